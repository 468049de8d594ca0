//! The crash matrix's topic roles: a topic publisher and a topic subscriber
//! SIGKILLed under load on a lossless topic (see the table in the parent
//! module's docs).

use super::*;

/// The test topic's slots and slot size: few slots, so that publishers
/// often wait for the slowest subscriber.
const T_SLOTS: u64 = 16;

fn open_topic(b: &Bus) -> shmbus_client::Topic {
    b.topic_builder("t")
        .slots(T_SLOTS)
        .slot_size(MSG as u64)
        .open()
        .unwrap()
}

/// Victim: publishes `(id, 0..)` until killed, a third through zero-copy
/// claims; acks `seq + 1` after each.
pub(super) fn topic_publisher(bus: &str, id: u64, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let p = open_topic(&b).publisher();
    let ack = Ack::open(ack);
    println!("started");
    for seq in 0.. {
        let m = queue_message(id, seq);
        if seq % 3 == 0 {
            let mut c = p.claim(MSG).unwrap();
            c.write_at(0, &m);
            c.commit().unwrap();
        } else {
            p.publish(&m).unwrap();
        }
        ack.put(seq + 1, 0);
    }
}

/// Victim: subscribes, then receives until killed, checking every message
/// and that each publisher's messages come without a hole from where it
/// joined (a failed check ends it with a panic, which `reap` reports); acks
/// the count received.
pub(super) fn topic_subscriber(bus: &str, ack: &str) {
    let b = Bus::connect_to(bus).unwrap();
    let s = open_topic(&b).subscribe().unwrap();
    let ack = Ack::open(ack);
    println!("started");
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut buf = Vec::new();
    for n in 0u64.. {
        let (id, seq) = if n % 2 == 0 {
            s.recv_with(parse).unwrap()
        } else {
            s.recv_into(&mut buf).unwrap();
            parse(&buf)
        };
        if let Some(prev) = last.insert(id, seq) {
            assert_eq!(seq, prev + 1, "publisher {id:#x}: {seq} after {prev}");
        }
        ack.put(n + 1, 0);
    }
}

/// A survivor subscriber thread: receives until a STOP, checking each
/// message; reports each marker with the instant on `marks`. Returns every
/// `(id, seq)` in the order received.
fn subscriber_thread(
    t: &shmbus_client::Topic,
    marks: mpsc::Sender<(u64, Instant)>,
) -> thread::JoinHandle<Vec<(u64, u64)>> {
    let s = t.subscribe().unwrap();
    thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let (id, seq) = match s.recv_with_deadline(Instant::now() + WATCHDOG, parse) {
                Ok(m) => m,
                Err(e) => panic!("survivor subscriber after {} messages: {e}", got.len()),
            };
            match id {
                STOP => return got,
                MARK => marks.send((seq, Instant::now())).unwrap(),
                _ => {}
            }
            got.push((id, seq));
        }
    })
}

/// A survivor publisher thread: publishes `(id, 0..)` until told to stop;
/// returns how many publishes returned Ok.
fn publisher_thread(
    t: &shmbus_client::Topic,
    id: u64,
    stop: mpsc::Receiver<()>,
) -> thread::JoinHandle<u64> {
    let p = t.publisher();
    thread::spawn(move || {
        let mut seq = 0;
        while stop.try_recv().is_err() {
            match p.publish_timeout(&queue_message(id, seq), WATCHDOG) {
                Ok(()) => seq += 1,
                Err(e) => panic!("survivor publisher {id} at {seq}: {e}"),
            }
        }
        seq
    })
}

/// After a kill: publishes marker `k` and waits until `subs` survivors have
/// received it (it sits behind every slot claimed before it, the dead one's
/// included). Returns the last of those instants.
fn marker_through(
    p: &shmbus_client::Publisher,
    marks: &mpsc::Receiver<(u64, Instant)>,
    subs: usize,
    k: u64,
) -> Instant {
    p.publish_timeout(&queue_message(MARK, k), WATCHDOG)
        .unwrap_or_else(|e| panic!("marker {k}: {e}"));
    let mut last = Instant::now();
    for _ in 0..subs {
        let (got, at) = marks
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("marker {k} never reached a subscriber ({e})"));
        assert_eq!(got, k, "markers out of order");
        last = last.max(at);
    }
    last
}

/// Stops the survivor publisher, sends STOP and collects what each
/// survivor subscriber received.
fn finish(
    p: &shmbus_client::Publisher,
    stop: mpsc::Sender<()>,
    steady: thread::JoinHandle<u64>,
    subs: Vec<thread::JoinHandle<Vec<(u64, u64)>>>,
) -> (u64, Vec<Vec<(u64, u64)>>) {
    stop.send(()).unwrap();
    let puts = within("the survivor publisher", move || steady.join().unwrap());
    p.publish_timeout(&queue_message(STOP, 0), WATCHDOG)
        .unwrap();
    let got = subs
        .into_iter()
        .map(|s| within("a survivor subscriber", move || s.join().unwrap()))
        .collect();
    (puts, got)
}

pub(super) fn run_topic_publisher_kills(n: usize) {
    let seed = seed("topic publisher");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("topic publisher", seed);
    let d = Daemon::start_role(DISPATCH, "cm-tp", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let t = open_topic(&b);
    let p = t.publisher();
    let ack = Scratch::new(&d.bus, "ack");
    let (marks_tx, marks) = mpsc::channel();
    let subs: Vec<_> = (0..2)
        .map(|_| subscriber_thread(&t, marks_tx.clone()))
        .collect();
    let (stop_tx, stop_rx) = mpsc::channel();
    let steady = publisher_thread(&t, STEADY, stop_rx);
    let mut acked = Vec::new();
    for k in 0..n as u64 {
        ack.reset();
        let killed = kill_under_load(
            &mut rng,
            "topic_publisher",
            &[&d.bus, &k.to_string(), ack.path()],
            || {},
        );
        acked.push(ack.words().0);
        let flowing = marker_through(&p, &marks, 2, k);
        tally.kills += 1;
        tally.waits.push(flowing.saturating_duration_since(killed));
    }
    let (puts, got) = finish(&p, stop_tx, steady, subs);
    // Every survivor subscriber saw the same messages in the same order.
    assert!(
        got[1] == got[0],
        "the survivor subscribers saw different orders"
    );
    let all = &got[0];
    tally.checked = got.iter().map(|g| g.len() as u64).sum();
    let mut by_id = count_once(all.iter().copied());
    let steady_got = by_id.remove(&STEADY).unwrap_or_default();
    assert_eq!(
        steady_got,
        (0..puts).collect::<Vec<_>>(),
        "the survivor publisher's {puts} messages, each once"
    );
    let marks_got = by_id.remove(&MARK).unwrap_or_default();
    assert_eq!(marks_got, (0..n as u64).collect::<Vec<_>>(), "markers");
    let mut in_flight = 0;
    for (k, &a) in acked.iter().enumerate() {
        let got = by_id.remove(&(k as u64)).unwrap_or_default();
        let c = got.len() as u64;
        assert_eq!(got, (0..c).collect::<Vec<_>>(), "victim {k}: not a prefix");
        assert!(
            a <= c && c <= a + 1,
            "victim {k}: {a} publishes returned Ok, {c} messages received"
        );
        in_flight += c - a;
    }
    assert!(
        by_id.is_empty(),
        "messages from nowhere: {:?}",
        by_id.keys()
    );
    // The topic is whole: a new subscriber gets a new message.
    let s = t.subscribe().unwrap();
    p.publish(b"after").unwrap();
    assert_eq!(s.recv_timeout(WATCHDOG).unwrap(), b"after");
    assert!(matches!(s.try_recv(), Err(Error::Empty)));
    tally.note = format!(
        "wait = SIGKILL to both survivor subscribers receiving a marker published after it; \
         {in_flight} publishes committed but not yet acked at the kill; both subscribers in one order"
    );
    tally.report();
}

pub(super) fn run_topic_subscriber_kills(n: usize) {
    let seed = seed("topic subscriber");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("topic subscriber", seed);
    let d = Daemon::start_role(DISPATCH, "cm-ts", &[]);
    let b = Bus::connect_to(&d.bus).unwrap();
    let t = open_topic(&b);
    let p = t.publisher();
    let ack = Scratch::new(&d.bus, "ack");
    let (marks_tx, marks) = mpsc::channel();
    let subs = vec![subscriber_thread(&t, marks_tx)];
    let (stop_tx, stop_rx) = mpsc::channel();
    let steady = publisher_thread(&t, STEADY, stop_rx);
    let mut received = 0u64;
    for k in 0..n as u64 {
        ack.reset();
        let killed = kill_under_load(&mut rng, "topic_subscriber", &[&d.bus, ack.path()], || {});
        received += ack.words().0;
        // Publishers waiting for the dead subscriber are released only by
        // the daemon freeing its place.
        let flowing = marker_through(&p, &marks, 1, k);
        tally.kills += 1;
        tally.waits.push(flowing.saturating_duration_since(killed));
    }
    let (puts, got) = finish(&p, stop_tx, steady, subs);
    tally.checked = got[0].len() as u64 + received;
    let mut by_id = count_once(got[0].iter().copied());
    assert_eq!(
        by_id.remove(&STEADY).unwrap_or_default(),
        (0..puts).collect::<Vec<_>>(),
        "the survivor subscriber got each of the publisher's {puts} messages once"
    );
    assert_eq!(
        by_id.remove(&MARK).unwrap_or_default(),
        (0..n as u64).collect::<Vec<_>>(),
        "markers"
    );
    assert!(
        by_id.is_empty(),
        "messages from nowhere: {:?}",
        by_id.keys()
    );
    // Every victim's place was freed: only the survivor is left.
    support::eventually("the dead subscribers' places freed", || {
        (t.stats().subscribers == 0).then_some(())
    });
    tally.note = format!(
        "wait = SIGKILL to the survivor subscriber receiving a marker published after it \
         (lossless: the publisher waits for the dead subscriber until its place is freed); \
         victims received {received} messages, each checked"
    );
    tally.report();
}
