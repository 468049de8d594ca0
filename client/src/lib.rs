//! shmbus client library.
