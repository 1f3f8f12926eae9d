//! A running worker process, seen from the parent.

use std::ffi::OsStr;
use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::plan::{CallReport, Report, WorkerPlan};

/// A worker process: spawned with its plan, told `go` and `stop` on stdin, read line by line.
/// It is killed when the handle drops.
pub struct Worker {
    /// The plan's id.
    pub id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    calls: Vec<CallReport>,
}

impl Worker {
    /// Starts `program [args..] <plan as JSON>` (the store's credential, if any, in its
    /// environment) and waits until it reports [`Report::Ready`].
    pub async fn spawn(
        program: impl AsRef<OsStr>,
        args: &[&str],
        plan: &WorkerPlan,
    ) -> io::Result<Worker> {
        let plan_json = serde_json::to_string(plan).map_err(io::Error::other)?;
        let environment = plan.store.environment().map_err(io::Error::other)?;
        let mut child = Command::new(program)
            .args(args)
            .arg(plan_json)
            .envs(environment)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut worker = Worker {
            id: plan.id.clone(),
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            calls: Vec::new(),
        };
        match worker.next_report().await? {
            Some(Report::Ready) => Ok(worker),
            other => Err(io::Error::other(format!(
                "worker {} did not get ready: {other:?} (exit: {:?})",
                worker.id,
                worker.child.try_wait()
            ))),
        }
    }

    /// Tells the worker to start calling.
    pub async fn go(&mut self) -> io::Result<()> {
        self.say("go").await
    }

    /// Tells the worker to stop calling and exit.
    pub async fn stop(&mut self) -> io::Result<()> {
        self.say("stop").await
    }

    async fn say(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin closed"))?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await
    }

    /// The next report, or `None` once the worker closed its output. Call reports are also
    /// kept for [`finish`](Self::finish).
    pub async fn next_report(&mut self) -> io::Result<Option<Report>> {
        let Some(line) = self.lines.next_line().await? else {
            return Ok(None);
        };
        let report: Report = serde_json::from_str(&line)
            .map_err(|error| io::Error::other(format!("bad report {line:?}: {error}")))?;
        if let Report::Call(call) = &report {
            self.calls.push(call.clone());
        }
        Ok(Some(report))
    }

    /// Waits for the worker to finish its run; returns every call it reported and how it
    /// exited.
    pub async fn finish(mut self) -> io::Result<(Vec<CallReport>, ExitStatus)> {
        while self.next_report().await?.is_some() {}
        let status = self.child.wait().await?;
        Ok((self.calls, status))
    }

    /// Kills the worker at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) -> io::Result<()> {
        self.child.kill().await
    }

    /// Stops the worker where it stands (SIGSTOP), as a long GC pause or a frozen VM would:
    /// it neither runs nor renews its locks until [`resume`](Self::resume).
    pub async fn pause(&self) -> io::Result<()> {
        self.signal("-STOP").await
    }

    /// Lets a paused worker run on (SIGCONT).
    pub async fn resume(&self) -> io::Result<()> {
        self.signal("-CONT").await
    }

    async fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| io::Error::other(format!("worker {} has exited", self.id)))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} {pid} (worker {}) failed: {status}",
                self.id
            )))
        }
    }
}

/// Starts `n` workers of `plan` (ids `w0`, `w1`, ...) and, once all are ready, tells them all
/// to go.
pub async fn start_fleet(
    program: impl AsRef<OsStr>,
    args: &[&str],
    plan: &WorkerPlan,
    n: usize,
) -> io::Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        workers.push(Worker::spawn(&program, args, &plan.clone().with_id(format!("w{i}"))).await?);
    }
    for worker in &mut workers {
        worker.go().await?;
    }
    Ok(workers)
}

/// Waits for every worker to finish its run; fails when one exits unsuccessfully. Returns each
/// worker's id and calls, in order.
pub async fn finish_fleet(workers: Vec<Worker>) -> io::Result<Vec<(String, Vec<CallReport>)>> {
    let mut reports = Vec::with_capacity(workers.len());
    for worker in workers {
        let id = worker.id.clone();
        let (calls, status) = worker.finish().await?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "worker {id} exited with {status}"
            )));
        }
        reports.push((id, calls));
    }
    Ok(reports)
}
