//! Every execution model, with real threads and MPL 1 to 8, against sequential execution of the
//! same order, on a small service whose replies reveal any reordering of dependent commands.

use std::sync::atomic::{AtomicU64, Ordering};

use super::cdep::{CDep, DependsWhen, Signature};
use super::checkpoint::{Checkpoint, Checkpointer};
use super::exec::ExecModel;
use super::request::{BatchWriter, Status};
use super::service::{BadCommand, Service, ServiceSnapshotError};
use super::testkit::{self, Rng};

const KEYS: u64 = 64;
const READ: u8 = 1;
const WRITE: u8 = 2;
const APPEND: u8 = 3;

/// Registers and a log. `write(k, v)` returns the register's old value; `append(v)` adds the
/// sum of every register to the log and returns the log's length, so it depends on everything.
struct Registers {
    regs: Vec<AtomicU64>,
    log: Vec<u64>,
}

impl Registers {
    fn new() -> Registers {
        Registers { regs: (0..KEYS).map(AtomicU64::new).collect(), log: Vec::new() }
    }
}

fn command(class: u8, key: u64, value: u64) -> Vec<u8> {
    let mut c = vec![class];
    c.extend_from_slice(&key.to_le_bytes());
    c.extend_from_slice(&value.to_le_bytes());
    c
}

fn fields(command: &[u8]) -> (u8, u64, u64) {
    let k = u64::from_le_bytes(command[1..9].try_into().unwrap());
    let v = u64::from_le_bytes(command[9..17].try_into().unwrap());
    (command[0], k, v)
}

impl Service for Registers {
    fn dependencies() -> CDep {
        CDep::new()
            .command(READ, "read")
            .command(WRITE, "write")
            .command(APPEND, "append")
            .depends_on_all(APPEND)
            .depends_on(WRITE, &[READ, WRITE], DependsWhen::SameKey)
    }

    fn signature(command: &[u8]) -> Result<Signature, BadCommand> {
        if command.len() != 17 || !(READ..=APPEND).contains(&command[0]) {
            return Err(BadCommand);
        }
        let (class, key, _) = fields(command);
        if key >= KEYS {
            return Err(BadCommand);
        }
        Ok(Signature { class, key: (class != APPEND).then_some(key) })
    }

    fn execute_shared(&self, command: &[u8], reply: &mut Vec<u8>) {
        let (class, key, value) = fields(command);
        let r = &self.regs[key as usize];
        let out = match class {
            READ => r.load(Ordering::Relaxed),
            WRITE => r.swap(value, Ordering::Relaxed),
            _ => unreachable!("append runs exclusively"),
        };
        reply.extend_from_slice(&out.to_le_bytes());
    }

    fn execute_exclusive(&mut self, command: &[u8], reply: &mut Vec<u8>) {
        if fields(command).0 == APPEND {
            let sum =
                self.regs.iter().map(|r| r.load(Ordering::Relaxed)).fold(0u64, u64::wrapping_add);
            self.log.push(sum ^ fields(command).2);
            reply.extend_from_slice(&(self.log.len() as u64).to_le_bytes());
        } else {
            self.execute_shared(command, reply);
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        for r in &self.regs {
            out.extend_from_slice(&r.load(Ordering::Relaxed).to_le_bytes());
        }
        for v in &self.log {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn restore(bytes: &[u8]) -> Result<Registers, ServiceSnapshotError> {
        let words: Vec<u64> =
            bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        if !bytes.len().is_multiple_of(8) || words.len() < KEYS as usize {
            return Err(ServiceSnapshotError("not a snapshot of the registers".into()));
        }
        let (regs, log) = words.split_at(KEYS as usize);
        Ok(Registers { regs: regs.iter().map(|&v| AtomicU64::new(v)).collect(), log: log.to_vec() })
    }

    fn checksum(&self) -> u64 {
        let mut out = Vec::new();
        self.snapshot(&mut out);
        out.chunks(8).fold(17u64, |h, c| {
            (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x100_0000_01B3)
        })
    }
}

/// `n` commands of `clients` clients, `append_percent` of them appends, the rest reads and
/// writes of random registers.
fn workload(rng: &mut Rng, n: usize, clients: u64, append_percent: u64) -> Vec<(u64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let client = rng.below(clients);
            let key = rng.below(KEYS);
            let roll = rng.below(100);
            let class = if roll < append_percent {
                APPEND
            } else if roll.is_multiple_of(2) {
                READ
            } else {
                WRITE
            };
            (client, command(class, key, i as u64))
        })
        .collect()
}

#[test]
fn every_model_matches_sequential_execution_with_mpl_up_to_8() {
    for seed in 0..6u64 {
        let mut rng = Rng::new(seed);
        let append_percent = [0, 1, 10, 50, 100, 5][seed as usize];
        let commands = workload(&mut rng, 3_000, 5, append_percent);
        for model in [ExecModel::Smr, ExecModel::SpSmr, ExecModel::Psmr] {
            for workers in 1..=8 {
                let lanes = model.lanes(workers);
                let cg = super::CommandToGroups::derive(
                    &Registers::dependencies(),
                    super::KeyPartition::new(KEYS, lanes),
                )
                .unwrap();
                let script = testkit::script::<Registers>(model, &cg, &commands, 7);
                let (want, want_state, _) =
                    testkit::run(ExecModel::Smr, 1, KEYS, Registers::new(), &script);
                let (got, state, report) =
                    testkit::run(model, lanes, KEYS, Registers::new(), &script);
                let what = format!("seed {seed}, {} with {lanes} lanes", model.name());
                assert_eq!(got.len(), commands.len(), "{what}: a reply per command");
                assert!(got.iter().all(|r| r.2 == Status::Executed), "{what}: all executed");
                let diff = testkit::first_difference(&got, &want);
                assert!(diff.is_none(), "{what}: replies differ at {diff:?}");
                assert_eq!(state.read().checksum(), want_state.read().checksum(), "{what}: state");
                let executed: u64 = report.workers.iter().map(|w| w.executed).sum();
                assert_eq!(executed, commands.len() as u64, "{what}");
                if model != ExecModel::Smr && lanes > 1 && append_percent < 100 {
                    let busy = report.workers.iter().filter(|w| w.executed > w.synchronous).count();
                    assert!(busy > 1, "{what}: commands ran in more than one lane: {report:?}");
                }
            }
        }
    }
}

/// A retried command is executed once, its copies answered from the table; a command sent to a
/// group C-G does not send it to, or undecodable, is refused by every replica alike.
#[test]
fn copies_are_answered_once_and_misdirected_commands_refused() {
    let lanes = 3;
    let cg = super::CommandToGroups::derive(
        &Registers::dependencies(),
        super::KeyPartition::new(KEYS, lanes),
    )
    .unwrap();
    let mut script = testkit::script::<Registers>(
        ExecModel::Psmr,
        &cg,
        &[(1, command(WRITE, 0, 5)), (1, command(APPEND, 0, 0))],
        1,
    );
    // Both copied (a retry through another replica), and a write of key 0 (lane 0's) in lane 2's
    // group, and garbage in g_all.
    script.extend(script.clone());
    let mut w = BatchWriter::new(1024);
    w.begin(2, 0);
    w.push(0, &command(WRITE, 0, 9));
    script.push((ExecModel::lane_group(2), bytes::Bytes::copy_from_slice(w.bytes())));
    w.begin(3, 0);
    w.push(0, b"garbage");
    script.push((super::exec::GROUP_ALL, bytes::Bytes::copy_from_slice(w.bytes())));
    script.push((1, bytes::Bytes::from_static(b"not a batch")));
    let (replies, state, report) =
        testkit::run(ExecModel::Psmr, lanes, KEYS, Registers::new(), &script);
    let statuses: Vec<_> = replies.iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(
        statuses,
        [
            (1, 0, Status::Executed),
            (1, 0, Status::Executed),
            (1, 1, Status::Executed),
            (1, 1, Status::Executed),
            (2, 0, Status::WrongGroup),
            (3, 0, Status::BadCommand),
        ]
    );
    assert_eq!(replies[0].3, replies[1].3, "the copy gets the same reply");
    assert_eq!(state.read().regs[0].load(Ordering::Relaxed), 5, "the write ran once");
    assert_eq!(state.read().log.len(), 1, "the append ran once");
    let total = |f: fn(&super::WorkerStats) -> u64| report.workers.iter().map(f).sum::<u64>();
    assert_eq!(total(|w| w.duplicates), 2);
    assert_eq!(total(|w| w.refused), 2);
    assert_eq!(total(|w| w.malformed_batches), 1);
}

/// Takes every checkpoint a run makes.
#[derive(Debug, Default)]
struct Taken(std::sync::Mutex<Vec<Checkpoint>>);

impl Checkpointer for Taken {
    fn checkpoint(&self, c: Checkpoint) {
        self.0.lock().unwrap().push(c);
    }
}

#[test]
fn a_replica_restored_from_a_checkpoint_goes_on_as_if_never_stopped() {
    use std::sync::Arc;

    use super::checkpoint::REPLICA_CLIENT;
    use super::client_table::ClientTable;
    use super::exec::{ExecStart, GROUP_ALL};

    // Two requests in one batch take one checkpoint.
    let mut request = BatchWriter::new(64);
    request.begin(REPLICA_CLIENT, 0);
    request.push(0, b"checkpoint");
    request.push(1, b"checkpoint");
    let request = bytes::Bytes::copy_from_slice(request.bytes());
    let models = [
        (ExecModel::Smr, 1),
        (ExecModel::SpSmr, 2),
        (ExecModel::SpSmr, 4),
        (ExecModel::Psmr, 2),
        (ExecModel::Psmr, 5),
        (ExecModel::OptPsmr, 3),
    ];
    for (model, workers) in models {
        for seed in 0..3u64 {
            let what = format!("{} with {workers} workers, seed {seed}", model.name());
            let lanes = model.lanes(workers);
            let cmds = workload(&mut Rng::new(seed), 3_000, 5, 10);
            let cg = super::cdep::CommandToGroups::derive(
                &Registers::dependencies(),
                super::cdep::KeyPartition::new(KEYS, lanes),
            )
            .unwrap();
            let mut script = testkit::script::<Registers>(model, &cg, &cmds, 7);
            let at = script.len() / 2 + seed as usize;
            script.insert(at, (GROUP_ALL, request.clone()));
            // Clients' copies of the batches just before the checkpoint, ordered again after
            // it: the restored tables must answer them as the uninterrupted replica does.
            let copies: Vec<_> = script[at - 6..at].to_vec();
            script.splice(at + 1..at + 1, copies);
            let taken = Arc::new(Taken::default());
            let start = ExecStart { tables: None, checkpointer: Some(taken.clone()) };
            let (want, want_state, _) =
                testkit::run_from(model, lanes, KEYS, Registers::new(), &script, 0, start);

            let c = taken.0.lock().unwrap().pop().expect("one checkpoint");
            assert!(taken.0.lock().unwrap().is_empty(), "{what}: one checkpoint per batch");
            assert_eq!(c.lanes.len(), lanes, "{what}: a part per lane");
            for part in &c.lanes {
                let position = u64::from_le_bytes(part.position[..].try_into().unwrap());
                assert_eq!(position, at as u64, "{what}: every source stood at the request");
            }
            let tables = c
                .lanes
                .iter()
                .map(|p| {
                    (
                        ClientTable::decode(&p.table).unwrap().0,
                        ClientTable::decode(&p.table_all).unwrap().0,
                    )
                })
                .collect();
            let state = Registers::restore(&c.service).unwrap();
            let start = ExecStart { tables: Some(tables), checkpointer: None };
            let (got, got_state, _) =
                testkit::run_from(model, lanes, KEYS, state, &script, at, start);

            assert_eq!(got_state.read().checksum(), want_state.read().checksum(), "{what}: state");
            // Every reply the restored replica gives is the one the uninterrupted run gave,
            // and every command ordered after the checkpoint is answered.
            for r in &got {
                assert!(want.binary_search(r).is_ok(), "{what}: {r:?} differs");
            }
            let after: usize = script[at + 7..]
                .iter()
                .map(|(_, b)| super::request::RequestBatch::parse(b).unwrap().len())
                .sum();
            assert!(got.len() >= after, "{what}: {} replies, {after} new commands", got.len());
        }
    }
}
