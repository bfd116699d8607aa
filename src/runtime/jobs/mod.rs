//! Timers and reminders (SPEC TM1-TM3, RM1-RM5, the timer parts of D2/D3):
//! one actix actor, [`JobsActor`], owns every timer and reminder, the one
//! [`DeadlineQueue`] they wait in and the one wake-up for its head; [`Jobs`]
//! is the handle the RPCs use.
//!
//! Timers and reminders share the queue, the wake-up and the fire path, so
//! one actor owns both; what differs lives in [`timer`] (memory only) and
//! [`reminder`] (the store, [`policy`]).
//!
//! # The life of a fire
//!
//! The wake-up pops the due jobs. Each fire runs on a task of its own: it
//! takes the actor's turn from the table (activating the actor, D1; queued
//! FIFO behind invokes, T1), sends `timer_request` / `reminder_request`,
//! drops the turn once the app has answered, and reports back. Only then is
//! the job put back in the queue, at `Schedule::after_fire(now)`: while a
//! fire is out its job is in no queue, so fires of one job never overlap
//! (TM3). Every registration carries a generation; a report for a job that
//! was replaced or removed meanwhile is ignored.
//!
//! # Parking (RM5)
//!
//! The table tells this actor which types are hosted ([`TableEvent`], via
//! [`Watch`]: subscribed to, so neither the table nor the manager knows of
//! timers). A reminder that falls due while nobody hosts its type is parked
//! under its type, out of the queue; when a stream hosting the type
//! registers, its parked reminders are queued for now and fire once. A
//! timer's type unhosted removes the type's timers (D3).

pub mod error;
pub mod id;
pub mod policy;
pub mod reminder;
pub mod timer;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use log::warn;
use tokio::time::Instant;

use super::clock::Clock;
use super::data;
use super::schedule::Schedule;
use super::scheduler::DeadlineQueue;
use super::table::{ActorKey, ActorTable, IsHosted, REENTRANCY_ID, TableEvent, Watch};
use crate::clip::Clipped;
use crate::error::Error;
use crate::metrics::{self, JobKind};
use crate::store::{Batch, Store, StoreError};
use crate::transport::{FireOutcome, ReminderRequest, TimerRequest, Transport};
pub use error::JobError;
pub use id::JobId;
pub use policy::FailurePolicy;
pub use reminder::{Reminder, Stored};
pub use timer::Timer;

/// How long one fire may take, waiting for the actor's turn included. A fire
/// past it has failed (logged for a timer, the failure policy for a
/// reminder), and the job goes on.
pub const FIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many timers and how many reminders the gateway keeps at most (P4):
/// each costs memory (and a reminder a stored record) for as long as it
/// lives, and actor ids are free for the asking, so without a bound an app
/// (or a caller) could register them until the process runs out.
/// Reminders restored at start are all kept, over the bound or not: they
/// were accepted once; the bound refuses new registrations only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    pub max_timers: usize,
    pub max_reminders: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_timers: 1_000_000,
            max_reminders: 1_000_000,
        }
    }
}

/// A RegisterActorTimer, its names already checked.
#[derive(Debug, Clone, Default)]
pub struct TimerSpec {
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    pub callback: String,
    pub data: Vec<u8>,
    /// `data` is JSON text (daprd's HTTP API), not bytes (gRPC).
    pub data_is_json: bool,
}

/// A RegisterActorReminder, its names already checked.
#[derive(Debug, Clone, Default)]
pub struct ReminderSpec {
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    pub data: Vec<u8>,
    /// `data` is JSON text (daprd's HTTP API), not bytes (gRPC).
    pub data_is_json: bool,
    /// False: refuse to replace an existing reminder (RM2).
    pub overwrite: bool,
    pub policy: FailurePolicy,
}

/// The handle on the runtime's timers and reminders. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    actor: Addr<JobsActor>,
    table: Addr<ActorTable>,
    clock: Clock,
}

impl Jobs {
    /// Loads the stored reminders and starts the actor on this arbiter.
    pub async fn start(
        arbiter: &ArbiterHandle,
        table: Addr<ActorTable>,
        transport: Transport,
        store: Arc<dyn Store>,
        clock: Clock,
        limits: JobLimits,
    ) -> Result<Jobs, StoreError> {
        let stored = reminder::load_all(store.as_ref()).await?;
        let actor = JobsActor {
            table: table.clone(),
            transport,
            store,
            clock,
            queue: DeadlineQueue::new(),
            wake: None,
            timers: HashMap::new(),
            reminders: HashMap::new(),
            hosted: HashSet::new(),
            parked: HashMap::new(),
            next_generation: 0,
            limits,
            timer_count: 0,
        };
        let actor = JobsActor::start_in_arbiter(arbiter, move |ctx| {
            let mut actor = actor;
            actor.restore_stored(stored, ctx);
            actor
        });
        table.do_send(Watch(actor.clone().recipient()));
        Ok(Jobs {
            actor,
            table,
            clock,
        })
    }

    /// Stops the timers and reminders: nothing fires from here on, and the
    /// actor lets go of the store. Reminders stay stored.
    pub fn stop(&self) {
        self.actor.do_send(Stop);
    }

    /// RegisterActorTimer (TM1, TM2): replaces a timer of the same name.
    pub async fn register_timer(&self, id: JobId, spec: TimerSpec) -> Result<(), JobError> {
        if !self.hosted(&id).await? {
            return Err(JobError::TimerCreate(format!(
                "actor type {} not registered",
                id.actor_type()
            )));
        }
        let schedule = Schedule::timer(&spec.due_time, &spec.period, &spec.ttl, self.clock.now())
            .map_err(|e| JobError::TimerCreate(e.to_string()))?;
        let timer = Timer {
            schedule,
            callback: spec.callback,
            data: data::wrap(&spec.data, spec.data_is_json),
        };
        self.ask(AddTimer { id, timer }).await?
    }

    /// UnregisterActorTimer: idempotent, whoever hosts the type.
    pub async fn unregister_timer(&self, id: JobId) -> Result<(), JobError> {
        self.ask(RemoveTimer(id)).await
    }

    /// RegisterActorReminder (RM1, RM2, RM4): answers once the store has it.
    pub async fn register_reminder(&self, id: JobId, spec: ReminderSpec) -> Result<(), JobError> {
        self.check_hosted(&id).await?;
        let schedule =
            Schedule::reminder(&spec.due_time, &spec.period, &spec.ttl, self.clock.now())
                .map_err(|e| JobError::ReminderCreate(e.to_string()))?;
        let reminder = Reminder {
            schedule,
            data: spec.data,
            data_is_json: spec.data_is_json,
            policy: spec.policy,
        };
        let add = AddReminder {
            id,
            reminder,
            overwrite: spec.overwrite,
        };
        self.ask(add).await?.await
    }

    /// UnregisterActorReminder (RM3): a missing name is OK.
    pub async fn unregister_reminder(&self, id: JobId) -> Result<(), JobError> {
        self.check_hosted(&id).await?;
        self.ask(RemoveReminder(id)).await?.await
    }

    /// GetActorReminder (RM3).
    pub async fn get_reminder(&self, id: JobId) -> Result<Reminder, JobError> {
        self.check_hosted(&id).await?;
        let name = id.name().to_owned();
        self.ask(GetReminder(id))
            .await?
            .ok_or(JobError::ReminderNotFound(name))
    }

    async fn hosted(&self, id: &JobId) -> Result<bool, JobError> {
        let ask = IsHosted(id.actor_type().to_owned());
        self.table
            .send(ask)
            .await
            .map_err(|_| JobError::ShuttingDown)
    }

    /// RM2: reminders exist only for hosted types.
    async fn check_hosted(&self, id: &JobId) -> Result<(), JobError> {
        match self.hosted(id).await? {
            true => Ok(()),
            false => Err(JobError::NotHosted),
        }
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, JobError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        JobsActor: Handler<M>,
    {
        self.actor
            .send(msg)
            .await
            .map_err(|_| JobError::ShuttingDown)
    }
}

/// What the queue holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Job {
    Timer(JobId),
    Reminder(JobId),
}

/// The owner of every timer and reminder; see the module doc.
pub struct JobsActor {
    table: Addr<ActorTable>,
    transport: Transport,
    store: Arc<dyn Store>,
    clock: Clock,
    queue: DeadlineQueue<Job>,
    /// The one pending wake-up, for the queue's head, and when it is.
    wake: Option<(Instant, SpawnHandle)>,
    /// Per actor, so that an actor's timers go with it (D2, D3) at once.
    timers: HashMap<ActorKey, HashMap<String, Live<Timer>>>,
    /// Every reminder, as stored; the store is written first.
    reminders: HashMap<JobId, Live<Stored>>,
    /// Types a live stream hosts, as the table last said.
    hosted: HashSet<String>,
    /// Reminders due while nobody hosted their type (RM5), per type, with
    /// the generation they fell due in.
    parked: HashMap<String, Vec<(JobId, u64)>>,
    next_generation: u64,
    limits: JobLimits,
    /// Timers in `timers`, all actors together (the map is per actor).
    timer_count: usize,
}

/// A registered job and its registration's generation.
struct Live<T> {
    job: T,
    generation: u64,
    /// Failed fires of the current tick (reminders' RM4).
    failures: u32,
}

impl JobsActor {
    fn live<T>(&mut self, job: T) -> Live<T> {
        self.next_generation += 1;
        Live {
            job,
            generation: self.next_generation,
            failures: 0,
        }
    }

    /// Re-arms the one wake-up when the queue's head changed.
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self.queue.next_deadline();
        if self.wake.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = next {
            let wait = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(wait, |this, ctx| {
                this.wake = None;
                this.fire_due(ctx);
            });
            self.wake = Some((at, handle));
        }
    }

    fn enqueue(&mut self, job: Job, due: std::time::SystemTime, ctx: &mut Context<Self>) {
        let at = self.clock.instant_at(due);
        self.queue.insert(job, at);
        self.rearm(ctx);
    }

    fn fire_due(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(job) = self.queue.pop_due(now) {
            match job {
                Job::Timer(id) => self.fire_timer(id, ctx),
                Job::Reminder(id) => self.fire_reminder(id, ctx),
            }
        }
        self.rearm(ctx);
    }

    fn timer(&mut self, id: &JobId) -> Option<&mut Live<Timer>> {
        self.timers.get_mut(&id.actor())?.get_mut(id.name())
    }

    fn remove_timer(&mut self, id: &JobId) {
        let actor = id.actor();
        if let Some(named) = self.timers.get_mut(&actor) {
            if named.remove(id.name()).is_some() {
                self.timer_count -= 1;
                count_jobs(JobKind::Timer, id.actor_type(), -1);
            }
            if named.is_empty() {
                self.timers.remove(&actor);
            }
        }
        self.queue.remove(&Job::Timer(id.clone()));
    }

    /// D2, D3: an actor's timers go with it.
    fn remove_actor_timers(&mut self, actor: &ActorKey) {
        let named = self.timers.remove(actor).unwrap_or_default();
        self.timer_count -= named.len();
        count_jobs(JobKind::Timer, &actor.actor_type, -(named.len() as i64));
        for (name, _) in named {
            let id = JobId::new(&actor.actor_type, &actor.actor_id, &name);
            self.queue.remove(&Job::Timer(id));
        }
    }

    fn fire_timer(&mut self, id: JobId, ctx: &mut Context<Self>) {
        if !self.hosted.contains(id.actor_type()) {
            self.remove_timer(&id); // D3: its type went while it waited
            return;
        }
        let Some(live) = self.timer(&id) else {
            return;
        };
        let (request, generation) = (live.job.request(&id), live.generation);
        record_lateness(JobKind::Timer, live.job.schedule.due(), self.clock.now());
        let job = (Job::Timer(id.clone()), generation);
        self.spawn_fire(job, Fire::Timer(request), ctx, move |this, outcome, ctx| {
            this.timer_fired(id, generation, outcome, ctx)
        });
    }

    fn timer_fired(
        &mut self,
        id: JobId,
        generation: u64,
        outcome: Result<FireOutcome, Error>,
        ctx: &mut Context<Self>,
    ) {
        let now = self.clock.now();
        let Some(live) = self.timer(&id).filter(|l| l.generation == generation) else {
            return; // replaced or removed while it fired
        };
        record_fired(JobKind::Timer, id.actor_type(), &outcome);
        match outcome {
            Ok(FireOutcome::Continue) => {}
            Ok(FireOutcome::Cancel) => return self.remove_timer(&id),
            // TM3: logged, and the timer goes on.
            Err(e) => warn!("timer {} failed: {}", Named(&id), Clipped(&e.to_string())),
        }
        match live.job.schedule.clone().after_fire(now) {
            Some(next) => {
                let due = next.due();
                live.job.schedule = next;
                self.enqueue(Job::Timer(id), due, ctx);
            }
            None => self.remove_timer(&id),
        }
    }

    /// Every reminder enters the map here, and leaves it through
    /// [`drop_reminder`](Self::drop_reminder), so the metrics' count of
    /// reminders follows the map.
    fn keep_reminder(&mut self, id: JobId, live: Live<Stored>) -> Option<Live<Stored>> {
        if !self.reminders.contains_key(&id) {
            count_jobs(JobKind::Reminder, id.actor_type(), 1);
        }
        self.reminders.insert(id, live)
    }

    fn drop_reminder(&mut self, id: &JobId) -> Option<Live<Stored>> {
        let dropped = self.reminders.remove(id);
        if dropped.is_some() {
            count_jobs(JobKind::Reminder, id.actor_type(), -1);
        }
        dropped
    }

    /// P3: every stored reminder, queued for its stored due time; one that
    /// fell due while the gateway was down is due now, and fires once (its
    /// type has no host yet, so it is parked until one registers, RM5). The
    /// wake-up is armed once, after all are queued.
    fn restore_stored(&mut self, stored: Vec<reminder::Loaded>, ctx: &mut Context<Self>) {
        self.reminders.reserve(stored.len());
        self.queue.reserve(stored.len());
        for reminder::Loaded { id, stored, due } in stored {
            let at = self.clock.instant_at(due);
            let live = self.live(stored);
            self.keep_reminder(id.clone(), live);
            self.queue.insert(Job::Reminder(id), at);
        }
        self.rearm(ctx);
    }

    /// Queues a reminder in memory for its next due time.
    fn queue_reminder(&mut self, id: JobId, ctx: &mut Context<Self>) {
        if let Some(live) = self.reminders.get(&id) {
            let due = live.job.reminder().schedule.due();
            self.enqueue(Job::Reminder(id), due, ctx);
        }
    }

    /// A registration's commit failed: the store still holds what it held
    /// before, so memory goes back to that too, and the reminder it replaced
    /// is queued again. If a fire of that one was out, its report may have
    /// come (and been ignored) meanwhile, so it is queued whatever: a store
    /// failing is rare, and firing twice is better than never again (RM5).
    fn restore(&mut self, id: JobId, replaced: Option<Live<Stored>>, ctx: &mut Context<Self>) {
        match replaced {
            Some(old) => {
                self.keep_reminder(id.clone(), old);
                self.queue_reminder(id, ctx);
            }
            None => {
                self.drop_reminder(&id);
            }
        }
    }

    /// Forgets a reminder and deletes it from the store; the commit is
    /// handed over before this returns, so it is ordered after earlier
    /// writes of the same reminder.
    fn delete_reminder(
        &mut self,
        id: &JobId,
    ) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        self.drop_reminder(id);
        self.queue.remove(&Job::Reminder(id.clone()));
        let mut batch = Batch::new();
        batch.delete(id.key().to_vec());
        self.store.commit(batch)
    }

    fn fire_reminder(&mut self, id: JobId, ctx: &mut Context<Self>) {
        let hosted = self.hosted.contains(id.actor_type());
        let Some(live) = self.reminders.get(&id) else {
            return;
        };
        let generation = live.generation;
        if !hosted {
            let parked = self.parked.entry(id.actor_type().to_owned()).or_default();
            parked.push((id, generation));
            return;
        }
        let reminder = live.job.reminder();
        record_lateness(JobKind::Reminder, reminder.schedule.due(), self.clock.now());
        let fire = Fire::Reminder(reminder.request(&id));
        let job = (Job::Reminder(id.clone()), generation);
        self.spawn_fire(job, fire, ctx, move |this, outcome, ctx| {
            this.reminder_fired(id, generation, outcome, ctx)
        });
    }

    fn reminder_fired(
        &mut self,
        id: JobId,
        generation: u64,
        outcome: Result<FireOutcome, Error>,
        ctx: &mut Context<Self>,
    ) {
        let now = self.clock.now();
        let Some(live) = self
            .reminders
            .get_mut(&id)
            .filter(|l| l.generation == generation)
        else {
            return; // replaced or removed while it fired
        };
        record_fired(JobKind::Reminder, id.actor_type(), &outcome);
        let reminder = live.job.reminder();
        match outcome {
            Ok(FireOutcome::Continue) => live.failures = 0,
            // RM4: cancel deletes it.
            Ok(FireOutcome::Cancel) => return log_failed_write(self.delete_reminder(&id)),
            // RM4: any failure, the app's NOT_FOUND included, counts.
            Err(e) => {
                warn!(
                    "reminder {} failed: {}",
                    Named(&id),
                    Clipped(&e.to_string())
                );
                if let Some(wait) = reminder.policy.retry_after(live.failures) {
                    live.failures += 1;
                    self.queue.insert(Job::Reminder(id), Instant::now() + wait);
                    return self.rearm(ctx);
                }
                live.failures = 0;
            }
        }
        match reminder.schedule.clone().after_fire(now) {
            Some(next) => {
                let due = next.due();
                live.job = Stored::new(&Reminder {
                    schedule: next,
                    ..reminder
                });
                let mut batch = Batch::new();
                batch.put(id.key().to_vec(), live.job.value());
                log_failed_write(self.store.commit(batch));
                self.enqueue(Job::Reminder(id), due, ctx);
            }
            None => log_failed_write(self.delete_reminder(&id)),
        }
    }

    /// Runs one fire on a task of its own and hands its outcome to `done`
    /// on this actor.
    /// Whether `generation` is still the registration of `job`.
    fn is_current(&mut self, job: &Job, generation: u64) -> bool {
        let current = match job {
            Job::Timer(id) => self.timer(id).map(|l| l.generation),
            Job::Reminder(id) => self.reminders.get(id).map(|l| l.generation),
        };
        current == Some(generation)
    }

    /// Fires in a task: takes the actor's turn, then, if the job's
    /// registration is still current (not removed or replaced while it
    /// waited for the turn: its actor deactivated, D2, or it was
    /// unregistered), sends the fire and gives the turn back once the app
    /// has answered (T1, D1, TM3); `done` gets the outcome.
    fn spawn_fire(
        &mut self,
        (job, generation): (Job, u64),
        fire: Fire,
        ctx: &mut Context<Self>,
        done: impl FnOnce(&mut Self, Result<FireOutcome, Error>, &mut Context<Self>) + 'static,
    ) {
        let deadline = Instant::now() + FIRE_TIMEOUT;
        let table = self.table.clone();
        let transport = self.transport.clone();
        let actor = match &job {
            Job::Timer(id) | Job::Reminder(id) => id.actor(),
        };
        let taking = async move { super::take_turn(&table, actor, None, Some(deadline)).await };
        let firing = taking.into_actor(self).then(move |turn, this, _| {
            // Checked with the turn in hand: the job may have gone while the
            // fire queued behind a deactivation or an invoke.
            let gone = !this.is_current(&job, generation);
            async move {
                let turn = turn?;
                if gone {
                    // Never seen: `done` drops reports of jobs not current.
                    return Err(Error::Protocol("the job went while its fire waited".into()));
                }
                match fire.in_chain(turn.chain()) {
                    Fire::Timer(r) => transport.timer(r, Some(deadline)).await,
                    Fire::Reminder(r) => transport.reminder(r, Some(deadline)).await,
                }
            }
            .into_actor(this)
        });
        ctx.spawn(firing.map(move |outcome, this, ctx| done(this, outcome, ctx)));
    }
}

fn count_jobs(kind: JobKind, actor_type: &str, change: i64) {
    if let Some(m) = metrics::get() {
        m.jobs_registered(kind, actor_type, change);
    }
}

/// How late a fire leaves the scheduler: retries of a failed reminder count
/// from the tick they retry (their due time has not moved).
fn record_lateness(kind: JobKind, due: SystemTime, now: SystemTime) {
    if let Some(m) = metrics::get() {
        let late = now.duration_since(due).unwrap_or_default();
        m.job_sent(kind, late.as_secs_f64());
    }
}

fn record_fired(kind: JobKind, actor_type: &str, outcome: &Result<FireOutcome, Error>) {
    if let Some(m) = metrics::get() {
        m.job_fired(kind, actor_type, outcome.is_ok());
    }
}

/// A fire's message.
enum Fire {
    Timer(TimerRequest),
    Reminder(ReminderRequest),
}

impl Fire {
    /// With reentrancy on, a fire starts a chain like a top-level call (T3):
    /// its turn's chain id goes in the metadata, so that the callback's own
    /// calls back into this actor enter instead of waiting for the turn the
    /// fire holds.
    fn in_chain(mut self, chain: Option<&str>) -> Fire {
        if let Some(chain) = chain {
            let metadata = match &mut self {
                Fire::Timer(r) => &mut r.metadata,
                Fire::Reminder(r) => &mut r.metadata,
            };
            metadata.insert(REENTRANCY_ID.to_owned(), chain.to_owned());
        }
        self
    }
}

/// A store write nobody waits for (a reminder's progress): a failure is
/// logged; the reminder in memory goes on, and after a restart resumes from
/// the last write that succeeded.
fn log_failed_write(commit: futures::future::BoxFuture<'static, Result<(), StoreError>>) {
    actix_rt::spawn(async move {
        if let Err(e) = commit.await {
            warn!("writing a reminder's progress: {e}");
        }
    });
}

/// A job's names, clipped for the log.
struct Named<'a>(&'a JobId);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, i, n) = (self.0.actor_type(), self.0.actor_id(), self.0.name());
        write!(f, "{}/{}/{}", Clipped(t), Clipped(i), Clipped(n))
    }
}

impl Actor for JobsActor {
    type Context = Context<Self>;
}

impl Handler<TableEvent> for JobsActor {
    type Result = ();

    fn handle(&mut self, event: TableEvent, ctx: &mut Self::Context) {
        match event {
            TableEvent::ActorGone(actor) => self.remove_actor_timers(&actor),
            TableEvent::Hosting { hosted, unhosted } => {
                for t in unhosted {
                    self.hosted.remove(&t);
                    let gone: Vec<ActorKey> = self
                        .timers
                        .keys()
                        .filter(|a| a.actor_type == t)
                        .cloned()
                        .collect();
                    for actor in gone {
                        self.remove_actor_timers(&actor);
                    }
                }
                let now = Instant::now();
                for t in hosted {
                    // RM5: a parked reminder fires once, now.
                    for (id, generation) in self.parked.remove(&t).unwrap_or_default() {
                        let current = self.reminders.get(&id).map(|l| l.generation);
                        if current == Some(generation) {
                            self.queue.insert(Job::Reminder(id), now);
                        }
                    }
                    self.hosted.insert(t);
                }
                self.rearm(ctx);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for JobsActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
struct AddTimer {
    id: JobId,
    timer: Timer,
}

impl Handler<AddTimer> for JobsActor {
    type Result = Result<(), JobError>;

    fn handle(&mut self, msg: AddTimer, ctx: &mut Self::Context) -> Self::Result {
        let replaces = self.timer(&msg.id).is_some();
        if !replaces && self.timer_count >= self.limits.max_timers {
            return Err(JobError::TooMany {
                what: "timers",
                limit: self.limits.max_timers,
            });
        }
        let due = msg.timer.schedule.due();
        let live = self.live(msg.timer);
        let named = self.timers.entry(msg.id.actor()).or_default();
        if named.insert(msg.id.name().to_owned(), live).is_none() {
            self.timer_count += 1;
            count_jobs(JobKind::Timer, msg.id.actor_type(), 1);
        }
        self.enqueue(Job::Timer(msg.id), due, ctx);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct RemoveTimer(JobId);

impl Handler<RemoveTimer> for JobsActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveTimer, ctx: &mut Self::Context) {
        self.remove_timer(&msg.0);
        self.rearm(ctx);
    }
}

/// A store commit handed over in the handler (so commits keep the order of
/// the messages), awaited by the RPC.
type Committing = futures::future::BoxFuture<'static, Result<(), JobError>>;

#[derive(Message)]
#[rtype(result = "Committing")]
struct AddReminder {
    id: JobId,
    reminder: Reminder,
    overwrite: bool,
}

impl Handler<AddReminder> for JobsActor {
    type Result = MessageResult<AddReminder>;

    /// The commit is handed over here, so store writes keep the order of
    /// the messages. The new reminder replaces the old one in memory at
    /// once (so reports of the old one's fires are ignored from here on,
    /// and write nothing over it), but it is queued only once its commit is
    /// durable: a reminder fires only if a restart would have kept it. The
    /// outcome is handled on this actor, not in the RPC's future, so a
    /// caller that goes away meanwhile changes nothing.
    fn handle(&mut self, msg: AddReminder, ctx: &mut Self::Context) -> Self::Result {
        use futures::FutureExt;
        let AddReminder {
            id,
            reminder,
            overwrite,
        } = msg;
        let replaces = self.reminders.contains_key(&id);
        if !overwrite && replaces {
            let exists = JobError::ReminderExists(id.name().to_owned());
            return MessageResult(futures::future::ready(Err(exists)).boxed());
        }
        if !replaces && self.reminders.len() >= self.limits.max_reminders {
            let full = JobError::TooMany {
                what: "reminders",
                limit: self.limits.max_reminders,
            };
            return MessageResult(futures::future::ready(Err(full)).boxed());
        }
        let stored = Stored::new(&reminder);
        let mut batch = Batch::new();
        batch.put(id.key().to_vec(), stored.value());
        let commit = self.store.commit(batch);
        let live = self.live(stored);
        let generation = live.generation;
        let replaced = self.keep_reminder(id.clone(), live);
        self.queue.remove(&Job::Reminder(id.clone()));
        self.rearm(ctx);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let settle = commit.into_actor(self).map(move |result, this, ctx| {
            if this.is_current(&Job::Reminder(id.clone()), generation) {
                match &result {
                    Ok(()) => this.queue_reminder(id, ctx),
                    Err(_) => this.restore(id, replaced, ctx),
                }
            }
            let _ = answer.send(result.map_err(JobError::Store));
        });
        ctx.spawn(settle);
        MessageResult(async move { answered.await.unwrap_or(Err(JobError::ShuttingDown)) }.boxed())
    }
}

#[derive(Message)]
#[rtype(result = "Committing")]
struct RemoveReminder(JobId);

impl Handler<RemoveReminder> for JobsActor {
    type Result = MessageResult<RemoveReminder>;

    fn handle(&mut self, msg: RemoveReminder, ctx: &mut Self::Context) -> Self::Result {
        use futures::FutureExt;
        let commit = self.delete_reminder(&msg.0);
        self.rearm(ctx);
        MessageResult(async move { commit.await.map_err(JobError::Store) }.boxed())
    }
}

#[derive(Message)]
#[rtype(result = "Option<Reminder>")]
struct GetReminder(JobId);

impl Handler<GetReminder> for JobsActor {
    type Result = Option<Reminder>;

    fn handle(&mut self, msg: GetReminder, _: &mut Self::Context) -> Option<Reminder> {
        self.reminders.get(&msg.0).map(|l| l.job.reminder())
    }
}
