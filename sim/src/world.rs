//! The simulated foundation's data: orgs, spaces, offerings, plans, instances and keys, with
//! their creation times and metadata (labels and annotations), and the `/details` failures a
//! foundation carries on its own (a key nobody may read, a broker that fails once).
//!
//! Built with small helpers (`org`, `space`, `instance`, `key`) that return guids, so a test
//! says what it plants in a few lines. Guids are deterministic (a counter), creation order is
//! insertion order, as the Cloud Controller's default `order_by=created_at` lists them. Every
//! resource starts with [`CREATED_AT`] as its creation and update time and no metadata; the
//! fields are public, so a test dates a resource by writing them (`key_mut`, `instance_mut`,
//! ...).
//!
//! As in the Cloud Controller, labels and annotations live beside a resource, not in it:
//! [`World::set_label`] and [`World::set_annotation`] never move `updated_at`.
//!
//! Each offering carries its simulated broker ([`Broker`], chosen by the offering's name), the
//! catalog's `bindings_retrievable` and whether the broker works asynchronously; each key the
//! parameters it was created with, as far as its broker returns them. Keys created or deleted
//! through the API leave [`Job`]s behind (see [`crate::operations`]).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use time::OffsetDateTime;

use crate::broker::Broker;

/// Labels and annotations of a resource, as `metadata` in its V3 representation. Keys are
/// `prefix/name` or `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub guid: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct Space {
    pub guid: String,
    pub name: String,
    pub org_guid: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct Offering {
    pub guid: String,
    pub name: String,
    /// How the offering's broker turns parameters into credentials ([`Broker::for_offering`]).
    pub broker: Broker,
    /// `broker_catalog.features.bindings_retrievable`: whether
    /// `/v3/service_credential_bindings/:guid/parameters` may ask the broker. Defaults to
    /// [`Broker::bindings_retrievable`].
    pub bindings_retrievable: bool,
    /// `None`: the broker creates and deletes keys synchronously (the job completes at once).
    /// `Some(d)`: it answers asynchronously and the operation finishes `d` later, on the
    /// simulator's clock.
    pub async_after: Option<time::Duration>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub guid: String,
    pub name: String,
    pub offering_guid: String,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub guid: String,
    pub name: String,
    pub space_guid: String,
    /// `None` for a user-provided instance.
    pub plan_guid: Option<String>,
    /// The credential type a key gets when its parameters name none (XSUAA's
    /// `xs-security.json`); `None`: the broker's default (`binding-secret` for XSUAA).
    pub default_credential_type: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub guid: String,
    pub name: String,
    pub instance_guid: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub credentials: Value,
    /// `last_operation.type`: `create`, or `delete` once its deletion has started.
    pub operation: &'static str,
    /// `last_operation.state` (`succeeded`, `in progress`, `failed`).
    pub state: &'static str,
    /// `last_operation.description` (why the operation failed, else empty).
    pub description: String,
    /// The parameters the key was created with, as its broker returns them; `None`: the broker
    /// does not return them (OSBAPI lets it leave them out), so the Cloud Controller answers
    /// `{}`.
    pub parameters: Option<Value>,
    pub metadata: Metadata,
}

impl Key {
    /// Created and not being deleted (the Cloud Controller's `create_succeeded?`): only then
    /// do `/details` and `/parameters` answer.
    pub fn create_succeeded(&self) -> bool {
        self.operation == "create" && self.state == "succeeded"
    }

    /// Its last operation is still running.
    pub fn in_progress(&self) -> bool {
        self.state == "in progress"
    }
}

/// What a job does (`operation` in `/v3/jobs/:guid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOperation {
    CreateKey,
    DeleteKey,
}

impl JobOperation {
    pub fn name(self) -> &'static str {
        match self {
            JobOperation::CreateKey => "service_keys.create",
            JobOperation::DeleteKey => "service_keys.delete",
        }
    }
}

/// `state` of a job: `POLLING` (an asynchronous broker operation is running), `COMPLETE` or
/// `FAILED`. The simulated worker picks a job up at once, so none is ever seen `PROCESSING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Polling,
    Complete,
    Failed,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Polling => "POLLING",
            JobState::Complete => "COMPLETE",
            JobState::Failed => "FAILED",
        }
    }
}

/// The error a failed job reports (one entry of its `errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub code: u32,
    pub title: &'static str,
    pub detail: String,
}

/// A pollable job, as `POST` and `DELETE` of `/v3/service_credential_bindings` start them.
#[derive(Debug, Clone)]
pub struct Job {
    pub guid: String,
    pub operation: JobOperation,
    /// The key it works on.
    pub key_guid: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub state: JobState,
    /// When a `POLLING` job's broker operation finishes.
    pub due: Option<OffsetDateTime>,
    pub error: Option<JobError>,
}

/// A `/details` failure planted in the world: the status answered, and how many more times
/// (`None`: always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DetailsFailure {
    status: u16,
    remaining: Option<u32>,
}

/// Everything the simulated Cloud Controller knows.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub orgs: Vec<Org>,
    pub spaces: Vec<Space>,
    pub offerings: Vec<Offering>,
    pub plans: Vec<Plan>,
    pub instances: Vec<Instance>,
    pub keys: Vec<Key>,
    next_guid: u64,
    /// Key guid → position in `keys`, so `/details` is not a linear search at 20,000 keys.
    key_index: HashMap<String, usize>,
    /// Key guid → the failure its `/details` answers (see [`World::fail_details`]).
    details_failures: HashMap<String, DetailsFailure>,
    /// Every job started through the API, oldest first.
    pub jobs: Vec<Job>,
}

/// A fixed creation time, so listings are reproducible.
pub const CREATED_AT: OffsetDateTime = time::macros::datetime!(2025-01-01 00:00:00 UTC);

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn guid(&mut self, kind: u16) -> String {
        self.next_guid += 1;
        format!("{kind:08x}-0000-4000-8000-{:012x}", self.next_guid)
    }

    pub fn org(&mut self, name: &str) -> String {
        let guid = self.guid(0x0e9);
        self.orgs.push(Org {
            guid: guid.clone(),
            name: name.into(),
            created_at: CREATED_AT,
            updated_at: CREATED_AT,
            metadata: Metadata::default(),
        });
        guid
    }

    pub fn space(&mut self, org_guid: &str, name: &str) -> String {
        let guid = self.guid(0x5ace);
        self.spaces.push(Space {
            guid: guid.clone(),
            name: name.into(),
            org_guid: org_guid.into(),
            created_at: CREATED_AT,
            updated_at: CREATED_AT,
            metadata: Metadata::default(),
        });
        guid
    }

    /// The plan `plan` of offering `offering`, created on first use.
    pub fn plan(&mut self, offering: &str, plan: &str) -> String {
        let offering_guid = match self.offerings.iter().find(|o| o.name == offering) {
            Some(o) => o.guid.clone(),
            None => {
                let guid = self.guid(0x0ff);
                let broker = Broker::for_offering(offering);
                self.offerings.push(Offering {
                    guid: guid.clone(),
                    name: offering.into(),
                    broker,
                    bindings_retrievable: broker.bindings_retrievable(),
                    async_after: None,
                });
                guid
            }
        };
        if let Some(p) = self
            .plans
            .iter()
            .find(|p| p.name == plan && p.offering_guid == offering_guid)
        {
            return p.guid.clone();
        }
        let guid = self.guid(0x91a);
        self.plans.push(Plan {
            guid: guid.clone(),
            name: plan.into(),
            offering_guid,
        });
        guid
    }

    /// A managed instance of `offering`/`plan` in a space.
    pub fn instance(&mut self, space_guid: &str, offering: &str, plan: &str, name: &str) -> String {
        let plan_guid = self.plan(offering, plan);
        let guid = self.guid(0x1257);
        self.push_instance(&guid, space_guid, Some(plan_guid), name);
        guid
    }

    /// A user-provided instance (it can have no keys).
    pub fn user_provided(&mut self, space_guid: &str, name: &str) -> String {
        let guid = self.guid(0x0ba);
        self.push_instance(&guid, space_guid, None, name);
        guid
    }

    fn push_instance(&mut self, guid: &str, space_guid: &str, plan: Option<String>, name: &str) {
        self.instances.push(Instance {
            guid: guid.into(),
            name: name.into(),
            space_guid: space_guid.into(),
            plan_guid: plan,
            default_credential_type: None,
            created_at: CREATED_AT,
            updated_at: CREATED_AT,
            metadata: Metadata::default(),
        });
    }

    /// A service key with the given credentials.
    pub fn key(&mut self, instance_guid: &str, name: &str, credentials: Value) -> String {
        let guid = self.guid(0x4e1);
        self.key_index.insert(guid.clone(), self.keys.len());
        self.keys.push(Key {
            guid: guid.clone(),
            name: name.into(),
            instance_guid: instance_guid.into(),
            created_at: CREATED_AT,
            updated_at: CREATED_AT,
            credentials,
            operation: "create",
            state: "succeeded",
            description: String::new(),
            parameters: None,
            metadata: Metadata::default(),
        });
        guid
    }

    pub fn key_mut(&mut self, guid: &str) -> Option<&mut Key> {
        let i = *self.key_index.get(guid)?;
        self.keys.get_mut(i)
    }

    /// The key with this guid.
    pub fn key_by_guid(&self, guid: &str) -> Option<&Key> {
        self.keys.get(*self.key_index.get(guid)?)
    }

    pub fn org_mut(&mut self, guid: &str) -> Option<&mut Org> {
        self.orgs.iter_mut().find(|o| o.guid == guid)
    }

    pub fn space_mut(&mut self, guid: &str) -> Option<&mut Space> {
        self.spaces.iter_mut().find(|s| s.guid == guid)
    }

    pub fn instance_mut(&mut self, guid: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.guid == guid)
    }

    /// The offering named `name` (created by [`World::plan`] or [`World::instance`]).
    pub fn offering_mut(&mut self, name: &str) -> Option<&mut Offering> {
        self.offerings.iter_mut().find(|o| o.name == name)
    }

    /// The offering of a managed instance (`None` for a user-provided or unknown one).
    pub fn offering_of(&self, instance_guid: &str) -> Option<&Offering> {
        let instance = self.instances.iter().find(|i| i.guid == instance_guid)?;
        let plan = self
            .plans
            .iter()
            .find(|p| Some(&p.guid) == instance.plan_guid.as_ref())?;
        self.offerings.iter().find(|o| o.guid == plan.offering_guid)
    }

    /// The job with this guid.
    pub fn job(&self, guid: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.guid == guid)
    }

    /// The metadata of the org, space, instance or key with this guid.
    pub fn metadata_mut(&mut self, guid: &str) -> Option<&mut Metadata> {
        if let Some(i) = self.key_index.get(guid) {
            return self.keys.get_mut(*i).map(|k| &mut k.metadata);
        }
        if let Some(i) = self.instances.iter().position(|i| i.guid == guid) {
            return Some(&mut self.instances[i].metadata);
        }
        if let Some(i) = self.spaces.iter().position(|s| s.guid == guid) {
            return Some(&mut self.spaces[i].metadata);
        }
        self.org_mut(guid).map(|o| &mut o.metadata)
    }

    /// Sets a label on the org, space, instance or key with this guid (false if there is none).
    /// Like a `PATCH` of its metadata in the Cloud Controller, it does not move `updated_at`.
    pub fn set_label(&mut self, guid: &str, key: &str, value: &str) -> bool {
        self.metadata_mut(guid)
            .map(|m| m.labels.insert(key.into(), value.into()))
            .is_some()
    }

    /// Sets an annotation, as [`World::set_label`] sets a label.
    pub fn set_annotation(&mut self, guid: &str, key: &str, value: &str) -> bool {
        self.metadata_mut(guid)
            .map(|m| m.annotations.insert(key.into(), value.into()))
            .is_some()
    }

    /// Removes a label (false if the resource or the label does not exist); `updated_at`
    /// stays.
    pub fn remove_label(&mut self, guid: &str, key: &str) -> bool {
        self.metadata_mut(guid)
            .is_some_and(|m| m.labels.remove(key).is_some())
    }

    /// Removes an annotation, as [`World::remove_label`] removes a label.
    pub fn remove_annotation(&mut self, guid: &str, key: &str) -> bool {
        self.metadata_mut(guid)
            .is_some_and(|m| m.annotations.remove(key).is_some())
    }

    /// Makes the key's `/details` answer `status` for the next `times` requests (`None`:
    /// every request), then normally again; bodies as the server's details-failure switch
    /// sends them (`404 CF-ResourceNotFound`, `403 CF-NotAuthorized`, an HTML page for 502 to
    /// 504, `CF-UnknownError` otherwise). Planting again replaces the previous failure;
    /// `Some(0)` removes it. Unlike `Switches::fail_details`, this travels with the world, so
    /// the demo needs no test code.
    pub fn fail_details(&mut self, guid: &str, status: u16, times: Option<u32>) {
        if times == Some(0) {
            self.details_failures.remove(guid);
        } else {
            self.details_failures.insert(
                guid.into(),
                DetailsFailure {
                    status,
                    remaining: times,
                },
            );
        }
    }

    /// Removes every failure planted with [`World::fail_details`] (a demo world whose every
    /// key reads cleanly).
    pub fn clear_details_failures(&mut self) {
        self.details_failures.clear();
    }

    /// The failure planted for this key, if any: the status and how many more requests it
    /// answers (`None`: always).
    pub fn details_failure(&self, guid: &str) -> Option<(u16, Option<u32>)> {
        self.details_failures
            .get(guid)
            .map(|f| (f.status, f.remaining))
    }

    /// Spends one answer of the failure planted for this key and returns its status.
    pub(crate) fn take_details_failure(&mut self, guid: &str) -> Option<u16> {
        let failure = self.details_failures.get_mut(guid)?;
        let status = failure.status;
        match &mut failure.remaining {
            None => {}
            Some(1) => {
                self.details_failures.remove(guid);
            }
            Some(n) => *n -= 1,
        }
        Some(status)
    }

    /// Deletes a key.
    pub fn delete_key(&mut self, guid: &str) -> bool {
        let Some(i) = self.key_index.remove(guid) else {
            return false;
        };
        self.keys.remove(i);
        self.details_failures.remove(guid);
        for (pos, key) in self.keys.iter().enumerate().skip(i) {
            self.key_index.insert(key.guid.clone(), pos);
        }
        true
    }

    /// "Rotates" a key as a user would with the cf CLI: a new key (new guid, new credentials,
    /// created now, no metadata) with the same name, and the old one deleted. Returns the new
    /// guid.
    pub fn rotate_key(&mut self, guid: &str, credentials: Value) -> Option<String> {
        let old = self.key_by_guid(guid)?.clone();
        self.delete_key(guid);
        let new = self.key(&old.instance_guid, &old.name, credentials);
        let now = OffsetDateTime::now_utc();
        if let Some(k) = self.key_mut(&new) {
            k.created_at = now;
            k.updated_at = now;
        }
        Some(new)
    }

    pub fn find_key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Dates every instance, space and org before what it contains, as they were created:
    /// an instance `lead` before its earliest key, a space `lead` before its earliest instance,
    /// an org `lead` before its earliest space. A container with nothing in it is dated
    /// `lead` before `fallback`. Instances are updated a minute after their creation (their
    /// provisioning finishing), spaces and orgs never. Keys keep their dates.
    pub fn date_containers(&mut self, lead: time::Duration, fallback: OffsetDateTime) {
        let mut earliest: HashMap<&str, OffsetDateTime> = HashMap::new();
        for k in &self.keys {
            let e = earliest
                .entry(k.instance_guid.as_str())
                .or_insert(k.created_at);
            *e = (*e).min(k.created_at);
        }
        let mut instance_times = Vec::with_capacity(self.instances.len());
        for i in &self.instances {
            let created = earliest.get(i.guid.as_str()).copied().unwrap_or(fallback) - lead;
            instance_times.push(created);
        }
        let mut space_earliest: HashMap<String, OffsetDateTime> = HashMap::new();
        for (i, created) in self.instances.iter_mut().zip(instance_times) {
            i.created_at = created;
            i.updated_at = created + time::Duration::minutes(1);
            let e = space_earliest
                .entry(i.space_guid.clone())
                .or_insert(created);
            *e = (*e).min(created);
        }
        let mut org_earliest: HashMap<String, OffsetDateTime> = HashMap::new();
        for s in &mut self.spaces {
            let created = space_earliest.get(&s.guid).copied().unwrap_or(fallback) - lead;
            s.created_at = created;
            s.updated_at = created;
            let e = org_earliest.entry(s.org_guid.clone()).or_insert(created);
            *e = (*e).min(created);
        }
        for o in &mut self.orgs {
            let created = org_earliest.get(&o.guid).copied().unwrap_or(fallback) - lead;
            o.created_at = created;
            o.updated_at = created;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small() -> (World, [String; 4]) {
        let mut w = World::new();
        let org = w.org("o");
        let space = w.space(&org, "s");
        let instance = w.instance(&space, "it-rt", "api", "i");
        let key = w.key(&instance, "k", json!({}));
        (w, [org, space, instance, key])
    }

    #[test]
    fn labels_and_annotations_land_on_every_kind_of_resource_and_leave_updated_at() {
        let (mut w, guids) = small();
        for guid in &guids {
            assert!(w.set_label(guid, "team", guid));
            assert!(w.set_annotation(guid, "example.com/owner", "o@example.com"));
        }
        assert!(!w.set_label("no-such-guid", "team", "x"));
        assert!(!w.set_annotation("no-such-guid", "team", "x"));
        let [org, space, instance, key] = &guids;
        assert_eq!(w.orgs[0].metadata.labels["team"], *org);
        assert_eq!(w.spaces[0].metadata.labels["team"], *space);
        assert_eq!(w.instances[0].metadata.labels["team"], *instance);
        let k = w.key_by_guid(key).unwrap();
        assert_eq!(k.metadata.labels["team"], *key);
        assert_eq!(k.metadata.annotations["example.com/owner"], "o@example.com");
        assert_eq!(k.updated_at, CREATED_AT);
        assert_eq!(w.instances[0].updated_at, CREATED_AT);
        assert!(w.remove_label(key, "team"));
        assert!(!w.remove_label(key, "team"));
        assert!(w.remove_annotation(org, "example.com/owner"));
        assert!(w.key_by_guid(key).unwrap().metadata.labels.is_empty());
    }

    #[test]
    fn a_planted_failure_answers_its_count_then_stops() {
        let (mut w, [.., key]) = small();
        w.fail_details(&key, 502, Some(2));
        assert_eq!(w.details_failure(&key), Some((502, Some(2))));
        assert_eq!(w.take_details_failure(&key), Some(502));
        assert_eq!(w.take_details_failure(&key), Some(502));
        assert_eq!(w.take_details_failure(&key), None);
        w.fail_details(&key, 404, None);
        for _ in 0..5 {
            assert_eq!(w.take_details_failure(&key), Some(404));
        }
        w.fail_details(&key, 404, Some(0));
        assert_eq!(w.details_failure(&key), None);
        w.fail_details(&key, 404, None);
        w.clear_details_failures();
        assert_eq!(w.take_details_failure(&key), None);
    }

    #[test]
    fn containers_are_dated_before_what_they_contain() {
        let (mut w, [org, space, instance, key]) = small();
        let at = time::macros::datetime!(2026-03-01 12:00 UTC);
        w.key_mut(&key).unwrap().created_at = at;
        let empty = w.user_provided(&space, "ups");
        let lead = time::Duration::days(1);
        w.date_containers(lead, at);
        let i = w.instance_mut(&instance).unwrap();
        assert_eq!(i.created_at, at - lead);
        assert!(i.updated_at < at);
        assert_eq!(w.instance_mut(&empty).unwrap().created_at, at - lead);
        assert_eq!(w.space_mut(&space).unwrap().created_at, at - lead * 2);
        assert_eq!(w.org_mut(&org).unwrap().created_at, at - lead * 3);
    }
}
