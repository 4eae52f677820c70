//! Creating and deleting service keys as the Cloud Controller does it
//! (`service_credential_bindings_controller.rb`, `ServiceCredentialBindingKeyCreate`,
//! `CreateBindingAsyncJob`, `DeleteBindingJob`), on the [`World`].
//!
//! A key of a managed instance is always created and deleted through a job. The simulated
//! worker runs it at once: with a synchronous broker the job is `COMPLETE` when the request
//! returns; with an asynchronous one ([`crate::world::Offering::async_after`]) it is `POLLING`,
//! and the key's `last_operation` is `create` (or `delete`) `in progress`, until [`settle`] is
//! called at or after the operation's end. Then a created key's `updated_at` moves to that
//! instant, and a deleted key is gone. A broker that refuses the parameters fails the job
//! (`CF-UnableToPerform`) and leaves the key `create` `failed`, as the Cloud Controller does;
//! creating a key of that name again replaces it.
//!
//! Pure: the caller says `now` (the simulator's clock). The HTTP side is in the server.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::broker::{BindError, BindRequest};
use crate::world::{Job, JobError, JobOperation, JobState, Key, Metadata, World};

/// The secret-bearing fields of a key created through the API hold this, followed by `-` and
/// the key's guid: a marker a leak test can look for.
pub const CREATED_KEY_SECRET: &str = "sim-created-key-secret";

/// A request to create a key (`POST /v3/service_credential_bindings`, `type: key`), already
/// validated as a message.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub instance_guid: String,
    /// `None` when the request had no `parameters`.
    pub parameters: Option<Map<String, Value>>,
    pub metadata: Metadata,
}

/// Why the Cloud Controller refuses a request before any job starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `422 CF-UnprocessableEntity` with this detail.
    #[error("{0}")]
    Unprocessable(String),
    /// `404 CF-ResourceNotFound`: no such key.
    #[error("Service credential binding not found")]
    NotFound,
    /// `404 CF-ResourceNotFound` with this detail: the key is not (or no longer) created.
    #[error("{0}")]
    NotReady(String),
    /// `400 CF-ServiceFetchBindingParametersNotSupported`: the offering's catalog does not
    /// have `bindings_retrievable`.
    #[error("This service does not support fetching service binding parameters.")]
    ParametersNotSupported,
}

/// A key whose creation started: its guid and its job's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub key_guid: String,
    pub job_guid: String,
}

/// The detail of the Cloud Controller's 404 for a key that is not created (yet, or any more):
/// "Creation of service key in progress", "Deletion of service key failed", ...
pub fn not_ready(key: &Key) -> String {
    let operation = if key.operation == "create" {
        "Creation"
    } else {
        "Deletion"
    };
    format!("{operation} of service key {}", key.state)
}

/// Starts creating a key, as `POST /v3/service_credential_bindings` does after validating the
/// message.
pub fn create_key(world: &mut World, new: NewKey, now: OffsetDateTime) -> Result<Started, Refused> {
    let unprocessable = |d: String| Err(Refused::Unprocessable(d));
    let Some(instance) = world.instances.iter().find(|i| i.guid == new.instance_guid) else {
        return unprocessable(format!(
            "The service instance could not be found: '{}'",
            new.instance_guid
        ));
    };
    if instance.plan_guid.is_none() {
        return unprocessable(if new.parameters.is_some() {
            "Binding parameters are not supported for user-provided service instances".into()
        } else {
            "Service credential bindings of type 'key' are not supported for user-provided service instances.".into()
        });
    }
    let default_type = instance.default_credential_type.clone();
    replace_failed_namesake(world, &new)?;
    let Some(offering) = world.offering_of(&new.instance_guid).cloned() else {
        return unprocessable(format!(
            "The service instance could not be found: '{}'",
            new.instance_guid
        ));
    };
    let parameters = new.parameters.unwrap_or_default();
    let key_guid = world.key(&new.instance_guid, &new.name, json!({}));
    let secret = format!("{CREATED_KEY_SECRET}-{key_guid}");
    let bound = offering.broker.bind(BindRequest {
        parameters: &parameters,
        default_credential_type: default_type.as_deref(),
        now,
        secret: &secret,
    });
    let mut job = new_job(world, JobOperation::CreateKey, &key_guid, now);
    let (credentials, state, description) = match bound {
        Ok(credentials) => match offering.async_after {
            None => (credentials, "succeeded", String::new()),
            Some(after) => {
                job.state = JobState::Polling;
                job.due = Some(now + after);
                (credentials, "in progress", String::new())
            }
        },
        Err(e) => {
            let description = match e {
                BindError::Rejected(d) => format!("Service broker error: {d}"),
                BindError::Credentials(e) => format!("Service broker error: {e}"),
            };
            job.fail(now, "bind", &description);
            (json!({}), "failed", description)
        }
    };
    if let Some(key) = world.key_mut(&key_guid) {
        key.created_at = now;
        key.updated_at = now;
        key.metadata = new.metadata;
        key.parameters = Some(Value::Object(parameters));
        key.credentials = credentials;
        key.state = state;
        key.description = description;
    }
    let job_guid = job.guid.clone();
    world.jobs.push(job);
    Ok(Started { key_guid, job_guid })
}

/// Refuses a name the instance's keys already use, unless that key's creation failed, which
/// the Cloud Controller replaces (`ServiceCredentialBindingKeyCreate#precursor`).
fn replace_failed_namesake(world: &mut World, new: &NewKey) -> Result<(), Refused> {
    let Some(existing) = world
        .keys
        .iter()
        .find(|k| k.instance_guid == new.instance_guid && k.name == new.name)
    else {
        return Ok(());
    };
    let name = &new.name;
    if existing.operation == "delete" {
        return Err(Refused::Unprocessable(format!(
            "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with the name '{name}' that is getting deleted or its deletion failed."
        )));
    }
    if existing.state != "failed" {
        return Err(Refused::Unprocessable(format!(
            "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name '{name}'."
        )));
    }
    let guid = existing.guid.clone();
    world.delete_key(&guid);
    Ok(())
}

fn new_job(world: &mut World, operation: JobOperation, key_guid: &str, now: OffsetDateTime) -> Job {
    Job {
        guid: world.guid(0x10b),
        operation,
        key_guid: key_guid.into(),
        created_at: now,
        updated_at: now,
        state: JobState::Complete,
        due: None,
        error: None,
    }
}

impl Job {
    /// Fails the job as the Cloud Controller's job wrapper reports a broker error.
    fn fail(&mut self, now: OffsetDateTime, operation: &str, message: &str) {
        self.state = JobState::Failed;
        self.updated_at = now;
        self.due = None;
        self.error = Some(JobError {
            code: 10009,
            title: "CF-UnableToPerform",
            detail: format!("{operation} could not be completed: {message}"),
        });
    }
}

/// Starts deleting a key, as `DELETE /v3/service_credential_bindings/:guid` does for a managed
/// instance. A creation still in progress is cancelled (its job fails), as the create job does
/// when it finds a deletion under way. Returns the job's guid.
pub fn delete_key(world: &mut World, guid: &str, now: OffsetDateTime) -> Result<String, Refused> {
    let key = world.key_by_guid(guid).ok_or(Refused::NotFound)?;
    if key.operation == "delete" && key.in_progress() {
        return Err(Refused::Unprocessable(
            "There is an operation in progress for the service binding.".into(),
        ));
    }
    let instance = key.instance_guid.clone();
    let async_after = world.offering_of(&instance).and_then(|o| o.async_after);
    for job in world.jobs.iter_mut() {
        if job.key_guid == guid && job.state == JobState::Polling {
            job.fail(now, "create", "delete in progress");
        }
    }
    let mut job = new_job(world, JobOperation::DeleteKey, guid, now);
    match async_after {
        None => {
            world.delete_key(guid);
        }
        Some(after) => {
            let key = world.key_mut(guid).ok_or(Refused::NotFound)?;
            key.operation = "delete";
            key.state = "in progress";
            key.description.clear();
            key.updated_at = now;
            job.state = JobState::Polling;
            job.due = Some(now + after);
        }
    }
    let job_guid = job.guid.clone();
    world.jobs.push(job);
    Ok(job_guid)
}

/// Whether a job's broker operation has ended by `now` and [`settle`] has work.
pub fn has_due(world: &World, now: OffsetDateTime) -> bool {
    world
        .jobs
        .iter()
        .any(|j| j.state == JobState::Polling && j.due.is_some_and(|d| d <= now))
}

/// Finishes every asynchronous operation that has ended by `now`: a created key succeeds (its
/// `updated_at` moves to the end of the operation), a deleted key disappears, and their jobs
/// complete.
pub fn settle(world: &mut World, now: OffsetDateTime) {
    let mut finished = Vec::new();
    for job in world.jobs.iter_mut() {
        let Some(due) = job.due.filter(|d| *d <= now) else {
            continue;
        };
        if job.state != JobState::Polling {
            continue;
        }
        job.state = JobState::Complete;
        job.updated_at = due;
        job.due = None;
        finished.push((job.operation, job.key_guid.clone(), due));
    }
    for (operation, guid, at) in finished {
        match operation {
            JobOperation::CreateKey => {
                if let Some(key) = world.key_mut(&guid) {
                    key.state = "succeeded";
                    key.updated_at = at;
                }
            }
            JobOperation::DeleteKey => {
                world.delete_key(&guid);
            }
        }
    }
}

/// What `GET /v3/service_credential_bindings/:guid/parameters` answers: the parameters the
/// key was created with (`{}` when its broker does not return them), or why not.
pub fn parameters(world: &World, guid: &str) -> Result<Value, Refused> {
    let key = world.key_by_guid(guid).ok_or(Refused::NotFound)?;
    if !key.create_succeeded() {
        return Err(Refused::NotReady(not_ready(key)));
    }
    let retrievable = world
        .offering_of(&key.instance_guid)
        .is_some_and(|o| o.bindings_retrievable);
    if !retrievable {
        return Err(Refused::ParametersNotSupported);
    }
    Ok(key.parameters.clone().unwrap_or_else(|| json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    fn world() -> (World, String, String) {
        let mut w = World::new();
        let org = w.org("o");
        let space = w.space(&org, "s");
        let xsuaa = w.instance(&space, "xsuaa", "application", "x");
        let ups = w.user_provided(&space, "u");
        (w, xsuaa, ups)
    }

    fn new_key(instance: &str, name: &str, parameters: Value) -> NewKey {
        NewKey {
            name: name.into(),
            instance_guid: instance.into(),
            parameters: parameters.as_object().cloned(),
            metadata: Metadata::default(),
        }
    }

    #[test]
    fn a_synchronous_broker_creates_the_key_before_the_request_returns() {
        let (mut w, xsuaa, _) = world();
        let started = create_key(&mut w, new_key(&xsuaa, "k", json!({})), NOW).expect("created");
        let key = w.key_by_guid(&started.key_guid).expect("listed");
        assert!(key.create_succeeded());
        assert_eq!((key.created_at, key.updated_at), (NOW, NOW));
        assert_eq!(key.credentials["credential-type"], "binding-secret");
        let secret = format!("{CREATED_KEY_SECRET}-{}", key.guid);
        assert_eq!(key.credentials["clientsecret"], secret.as_str());
        let job = w.job(&started.job_guid).expect("a job");
        assert_eq!(
            (job.state, job.operation),
            (JobState::Complete, JobOperation::CreateKey)
        );
        assert_eq!(parameters(&w, &key.guid), Ok(json!({})));
    }

    #[test]
    fn an_asynchronous_broker_finishes_when_settled_after_its_delay() {
        let (mut w, xsuaa, _) = world();
        w.offering_mut("xsuaa").expect("offering").async_after = Some(Duration::seconds(30));
        let started = create_key(
            &mut w,
            new_key(&xsuaa, "k", json!({"credential-type": "x509"})),
            NOW,
        )
        .expect("created");
        let key = |w: &World| w.key_by_guid(&started.key_guid).cloned().expect("listed");
        assert_eq!(
            (key(&w).operation, key(&w).state),
            ("create", "in progress")
        );
        assert_eq!(
            parameters(&w, &started.key_guid),
            Err(Refused::NotReady(
                "Creation of service key in progress".into()
            ))
        );
        assert!(!has_due(&w, NOW + Duration::seconds(29)));
        settle(&mut w, NOW + Duration::seconds(29));
        assert!(key(&w).in_progress());
        assert!(has_due(&w, NOW + Duration::seconds(31)));
        settle(&mut w, NOW + Duration::seconds(31));
        assert!(key(&w).create_succeeded());
        assert_eq!(key(&w).updated_at, NOW + Duration::seconds(30));
        let job = w.job(&started.job_guid).expect("job");
        assert_eq!(
            (job.state, job.updated_at),
            (JobState::Complete, NOW + Duration::seconds(30))
        );

        let deleting =
            delete_key(&mut w, &started.key_guid, NOW + Duration::minutes(1)).expect("accepted");
        assert_eq!(
            (key(&w).operation, key(&w).state),
            ("delete", "in progress")
        );
        assert_eq!(
            delete_key(&mut w, &started.key_guid, NOW + Duration::minutes(1)),
            Err(Refused::Unprocessable(
                "There is an operation in progress for the service binding.".into()
            ))
        );
        settle(&mut w, NOW + Duration::minutes(2));
        assert!(w.key_by_guid(&started.key_guid).is_none());
        assert_eq!(w.job(&deleting).map(|j| j.state), Some(JobState::Complete));
    }

    #[test]
    fn names_are_unique_per_instance_and_a_failed_key_is_replaced() {
        let (mut w, xsuaa, ups) = world();
        let space = w.spaces[0].guid.clone();
        let other = w.instance(&space, "xsuaa", "application", "y");
        create_key(&mut w, new_key(&xsuaa, "k", json!({})), NOW).expect("created");
        create_key(&mut w, new_key(&other, "k", json!({})), NOW).expect("another instance");
        let duplicate = create_key(&mut w, new_key(&xsuaa, "k", json!({})), NOW);
        assert_eq!(
            duplicate,
            Err(Refused::Unprocessable("The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name 'k'.".into()))
        );
        let refused = create_key(
            &mut w,
            new_key(
                &xsuaa,
                "bad",
                json!({"credential-type": "x509", "x509": {"key-length": 1000}}),
            ),
            NOW,
        )
        .expect("a job starts");
        let failed = w.key_by_guid(&refused.key_guid).expect("listed");
        assert_eq!((failed.operation, failed.state), ("create", "failed"));
        assert!(failed
            .description
            .starts_with("Service broker error: x509.key-length"));
        let error = w
            .job(&refused.job_guid)
            .and_then(|j| j.error.clone())
            .expect("an error");
        assert_eq!((error.code, error.title), (10009, "CF-UnableToPerform"));
        assert!(error
            .detail
            .starts_with("bind could not be completed: Service broker error:"));
        let again = create_key(&mut w, new_key(&xsuaa, "bad", json!({})), NOW).expect("replaced");
        assert!(w.key_by_guid(&refused.key_guid).is_none());
        assert!(w
            .key_by_guid(&again.key_guid)
            .is_some_and(Key::create_succeeded));

        let unknown = create_key(&mut w, new_key("nope", "k", json!({})), NOW);
        assert_eq!(
            unknown,
            Err(Refused::Unprocessable(
                "The service instance could not be found: 'nope'".into()
            ))
        );
        let upsi = create_key(&mut w, new_key(&ups, "k", json!({})), NOW);
        assert!(
            matches!(upsi, Err(Refused::Unprocessable(d)) if d.starts_with("Binding parameters are not supported"))
        );
        let mut plain = new_key(&ups, "k", json!({}));
        plain.parameters = None;
        assert!(
            matches!(create_key(&mut w, plain, NOW), Err(Refused::Unprocessable(d)) if d.contains("type 'key' are not supported"))
        );
    }

    #[test]
    fn parameters_need_a_retrievable_offering_and_a_created_key() {
        let (mut w, xsuaa, _) = world();
        let asked =
            json!({"credential-type": "x509", "x509": {"key-length": 4096, "validity": 10}});
        let k = create_key(&mut w, new_key(&xsuaa, "k", asked.clone()), NOW).expect("created");
        assert_eq!(parameters(&w, &k.key_guid), Ok(asked));
        w.offering_mut("xsuaa")
            .expect("offering")
            .bindings_retrievable = false;
        assert_eq!(
            parameters(&w, &k.key_guid),
            Err(Refused::ParametersNotSupported)
        );
        assert_eq!(parameters(&w, "nope"), Err(Refused::NotFound));
        // A key planted without parameters: its broker does not return them.
        let planted = w.key(&xsuaa, "planted", json!({}));
        w.offering_mut("xsuaa")
            .expect("offering")
            .bindings_retrievable = true;
        assert_eq!(parameters(&w, &planted), Ok(json!({})));
        delete_key(&mut w, &planted, NOW).expect("deleted");
        assert_eq!(parameters(&w, &planted), Err(Refused::NotFound));
        assert_eq!(delete_key(&mut w, &planted, NOW), Err(Refused::NotFound));
    }
}
