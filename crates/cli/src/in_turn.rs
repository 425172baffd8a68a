//! Output made on other threads and written in the order it was asked for: one thread
//! produces batches of work (`flows check` reads and judges flows), others turn each batch
//! into text, and the texts are written in the order the batches were handed on. The
//! writing threads take the batches in order from one queue and wait for their batch's turn
//! to write, so each earlier batch is always in a writing thread's hands and the waits end.
//! Memory is bounded: at most two batches for each writing thread wait in the queue, and emptied
//! batches come back to be filled again.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Condvar, Mutex, PoisonError};

/// The producing side of [`write_in_turn`]: batches are handed on through it.
pub(crate) struct Handing<'a, B> {
    to_writers: SyncSender<(usize, B)>,
    emptied: Receiver<B>,
    failed: &'a AtomicBool,
    /// Batches handed on so far: the next one's number.
    handed: std::cell::Cell<usize>,
}

impl<B: Default> Handing<'_, B> {
    /// Hand `batch` on to be written after the batches before it, and leave an empty one
    /// (an emptied batch that came back, or a new one) in its place. Once a write has
    /// failed nothing more is written: the batch is dropped, and `false` says so.
    pub(crate) fn hand_on(&self, batch: &mut B) -> bool {
        if self.failed() {
            *batch = B::default();
            return false;
        }
        let next = self.emptied.try_recv().unwrap_or_default();
        let batch = std::mem::replace(batch, next);
        // The writing threads end only when this sender is dropped: the send finds them.
        let number = self.handed.get();
        let _ = self.to_writers.send((number, batch));
        self.handed.set(number + 1);
        true
    }

    /// Whether a write has failed (the rest is not written).
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Where the writing threads take their turns: the number of the batch whose turn it is,
/// the output, and the first failure to write to it.
struct Turns<W> {
    next: usize,
    out: W,
    written: io::Result<()>,
}

/// Run `produce` on this thread, handing batches on through its [`Handing`], while
/// `writers` threads (at least one) each turn the batches they take into text with
/// `write(state, batch, text)` (each thread's own `state` made by `state()`; `write`
/// appends to `text` and leaves `batch` empty to be filled again) and write the texts to
/// `out` in the order the batches were handed on. Returns what `produce` returned, `out`,
/// and the first failure to write (after which nothing more is written, and `produce` is
/// told so by [`Handing::hand_on`]).
pub(crate) fn write_in_turn<B, S, W, R>(
    out: W,
    writers: usize,
    state: impl Fn() -> S + Sync,
    write: impl Fn(&mut S, &mut B, &mut Vec<u8>) + Sync,
    produce: impl FnOnce(&Handing<B>) -> R,
) -> (R, W, io::Result<()>)
where
    B: Send + Default,
    W: Write + Send,
{
    let writers = writers.max(1);
    let failed = AtomicBool::new(false);
    let turns = (
        Mutex::new(Turns {
            next: 0,
            out,
            written: Ok(()),
        }),
        Condvar::new(),
    );
    let (to_writers, batches) = sync_channel::<(usize, B)>(2 * writers);
    let batches = Mutex::new(batches);
    let produced = std::thread::scope(|scope| {
        let (to_producer, emptied) = channel::<B>();
        for _ in 0..writers {
            let to_producer = to_producer.clone();
            let (batches, turns, failed, state, write) =
                (&batches, &turns, &failed, &state, &write);
            scope.spawn(move || {
                let mut own = state();
                writing_thread(batches, to_producer, turns, failed, &mut |batch, text| {
                    write(&mut own, batch, text)
                });
            });
        }
        drop(to_producer);
        let handing = Handing {
            to_writers,
            emptied,
            failed: &failed,
            handed: std::cell::Cell::new(0),
        };
        // The writing threads end when `handing` (its sender) is dropped here.
        produce(&handing)
    });
    let turns = turns.0.into_inner().unwrap_or_else(PoisonError::into_inner);
    (produced, turns.out, turns.written)
}

/// A writing thread of [`write_in_turn`]: each batch it takes from `batches` turned into
/// text, the emptied batch sent back, and the text written when the batch's turn comes.
fn writing_thread<B, W: Write>(
    batches: &Mutex<Receiver<(usize, B)>>,
    to_producer: Sender<B>,
    (turns, turn): &(Mutex<Turns<W>>, Condvar),
    failed: &AtomicBool,
    write: &mut dyn FnMut(&mut B, &mut Vec<u8>),
) {
    let mut text = Vec::new();
    loop {
        let taken = batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok((number, mut batch)) = taken else {
            return;
        };
        text.clear();
        // After a failure nothing more is written, and the batch is dropped.
        if !failed.load(Ordering::Relaxed) {
            write(&mut batch, &mut text);
            // The producer may be done: then the batch is not needed.
            let _ = to_producer.send(batch);
        }
        let mut state = turns.lock().unwrap_or_else(PoisonError::into_inner);
        while state.next != number {
            state = turn.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.written.is_ok() {
            state.written = state.out.write_all(&text);
            if state.written.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
        state.next += 1;
        turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of numbers written as lines, each batch on a writing thread that takes
    /// longer the earlier the batch (so later batches are ready first): on one to four
    /// writing threads the text is the numbers in the order they were handed on.
    #[test]
    fn texts_are_written_in_the_order_their_batches_were_handed_on() {
        let expected: String = (0..200u32).map(|n| format!("{n}\n")).collect();
        for writers in 1..=4 {
            let (handed, out, written) = write_in_turn(
                Vec::new(),
                writers,
                || 0usize,
                |batches_seen: &mut usize, batch: &mut Vec<u32>, text| {
                    *batches_seen += 1;
                    let first = batch.first().copied().unwrap_or(0);
                    std::thread::sleep(std::time::Duration::from_micros(
                        u64::from(200 - first.min(200)) * 20,
                    ));
                    for n in batch.drain(..) {
                        text.extend_from_slice(format!("{n}\n").as_bytes());
                    }
                },
                |handing| {
                    let mut batch = Vec::new();
                    let mut handed = 0;
                    for n in 0..200u32 {
                        batch.push(n);
                        if batch.len() == 3 {
                            assert!(handing.hand_on(&mut batch));
                            assert!(batch.is_empty());
                            handed += 1;
                        }
                    }
                    assert!(handing.hand_on(&mut batch));
                    handed + 1
                },
            );
            assert_eq!(handed, 67);
            written.unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "{writers} writers"
            );
        }
    }

    /// An output that takes `room` bytes, then fails.
    struct Full {
        room: usize,
        taken: Vec<u8>,
    }

    impl Write for Full {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
            }
            let n = bytes.len().min(self.room);
            self.room -= n;
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A failed write is the result, what came before it was written, and the producer is
    /// told to stop: no batch is handed on after the failure has been seen.
    #[test]
    fn a_failed_write_stops_the_writing_and_tells_the_producer() {
        for writers in 1..=3 {
            let (refused_at, out, written) = write_in_turn(
                Full {
                    room: 10,
                    taken: Vec::new(),
                },
                writers,
                || (),
                |(), batch: &mut Vec<u8>, text| text.append(batch),
                |handing| {
                    for n in 0..1_000_000u32 {
                        let mut batch = b"abcd".to_vec();
                        if !handing.hand_on(&mut batch) {
                            assert!(batch.is_empty() && handing.failed());
                            return Some(n);
                        }
                    }
                    None
                },
            );
            assert_eq!(
                written.map_err(|e| e.kind()),
                Err(io::ErrorKind::BrokenPipe)
            );
            assert_eq!(out.taken, b"abcdabcdab");
            // Refused soon after the third batch failed (at most the queue and the
            // batches in the writers' hands went on).
            assert!(refused_at.is_some_and(|n| n >= 3), "{refused_at:?}");
        }
    }
}
