//! shmbusd.
