//! The worker pool: the C++ `ThreadPool.cpp` (`CThreadPool`, `CWorkerThread`).
//!
//! As in the C++, each of the N workers has its own queue and a task goes to
//! a random worker (no scan of queue lengths, no shared lock). Differences:
//! a task that panics is logged and the worker carries on (in the C++ an
//! exception kills the process), and dropping the pool finishes the queued
//! tasks and joins the threads (the C++ pool is never stopped).

use crossbeam_channel::{unbounded, Sender};
use rand::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

/// One unit of work (`CTask::run`).
pub type Task = Box<dyn FnOnce() + Send + 'static>;

struct Worker {
    queue: Sender<Task>,
    thread: Option<JoinHandle<()>>,
}

/// A fixed pool of worker threads, each draining its own queue.
pub struct ThreadPool {
    workers: Vec<Worker>,
}

impl ThreadPool {
    /// Starts `size` workers (at least one) named `<name>-<index>`.
    pub fn new(name: &str, size: usize) -> std::io::Result<ThreadPool> {
        let mut workers = Vec::with_capacity(size.max(1));
        for idx in 0..size.max(1) {
            let (queue, tasks) = unbounded::<Task>();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{idx}"))
                .spawn(move || {
                    for task in tasks {
                        if catch_unwind(AssertUnwindSafe(task)).is_err() {
                            log::error!("worker {idx}: a task panicked; the worker carries on");
                        }
                    }
                })?;
            workers.push(Worker {
                queue,
                thread: Some(thread),
            });
        }
        Ok(ThreadPool { workers })
    }

    /// Number of workers.
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// `CThreadPool::AddTask`: queue `task` on a random worker.
    pub fn add_task(&self, task: impl FnOnce() + Send + 'static) {
        let idx = rand::thread_rng().gen_range(0..self.workers.len());
        self.add_task_to(idx, task);
    }

    /// Queue `task` on worker `idx % size`, for work that must stay in order
    /// (tasks on one worker run one after another).
    pub fn add_task_to(&self, idx: usize, task: impl FnOnce() + Send + 'static) {
        let worker = &self.workers[idx % self.workers.len()];
        if worker.queue.send(Box::new(task)).is_err() {
            // Only possible if the worker thread is gone, which catch_unwind prevents.
            log::error!(
                "worker {}: queue closed, task dropped",
                idx % self.workers.len()
            );
        }
    }
}

impl Drop for ThreadPool {
    /// Finishes every queued task, then joins the workers.
    fn drop(&mut self) {
        let threads: Vec<_> = self
            .workers
            .drain(..)
            .filter_map(|mut w| w.thread.take())
            .collect();
        // `drain` dropped every sender: each worker ends after its queue empties.
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn runs_every_task_and_survives_panics() {
        let done = Arc::new(AtomicUsize::new(0));
        {
            let pool = ThreadPool::new("t", 4).unwrap();
            assert_eq!(pool.size(), 4);
            for i in 0..1000 {
                let done = done.clone();
                pool.add_task(move || {
                    if i % 100 == 0 {
                        panic!("task {i} fails on purpose");
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        } // drop: finish queued work
        assert_eq!(done.load(Ordering::SeqCst), 990);
    }

    #[test]
    fn one_worker_keeps_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        {
            let pool = ThreadPool::new("t", 3).unwrap();
            for i in 0..200 {
                let seen = seen.clone();
                pool.add_task_to(7, move || seen.lock().unwrap().push(i));
            }
        }
        assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<_>>());
    }
}
