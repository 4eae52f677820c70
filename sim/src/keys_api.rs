//! The Cloud Controller endpoints that create, inspect and delete service keys, and those a
//! client needs around them: `POST /v3/service_credential_bindings`,
//! `GET` and `DELETE /v3/service_credential_bindings/:guid`,
//! `GET /v3/service_credential_bindings/:guid/parameters`, `GET /v3/jobs/:guid`,
//! `GET /v3/service_offerings` and `GET /v3/service_offerings/:guid`.
//!
//! Requests and answers follow `service_credential_bindings_controller.rb`, the create
//! messages and their validators, the job and offering presenters and `errors/v2.yml`: a
//! message that does not validate is a `422 CF-UnprocessableEntity` naming every problem
//! (joined with `, `), a body that is not a JSON object a `400 CF-MessageParseError`; keys of
//! managed instances are created and deleted through a job (`202` with a `Location`), see
//! [`crate::operations`]. The simulator knows no apps, so a binding of `type: app` is refused
//! as one whose app cannot be found.
//!
//! These routes sit behind the same guard as every `/v3` route (token, latency, rate limit,
//! outage, request log), so creations, deletions and parameter reads count against the rate
//! limit like any request. Handlers hold the world's lock only while they read or change it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::operations::{self, NewKey, Refused};
use crate::server::{cf_error, list_request, metadata, paginate, timestamp, LabelSelector};
use crate::world::{Key, Metadata, Offering, World};
use crate::SimState;

/// The simulator's clock, to the second (V3 timestamps and certificates have whole seconds).
pub(crate) fn sim_now(state: &SimState) -> OffsetDateTime {
    let now = OffsetDateTime::from(state.switches.now());
    now.replace_nanosecond(0).unwrap_or(now)
}

/// A key as the Cloud Controller presents a service credential binding of type `key`
/// (`service_credential_binding_presenter.rb`).
pub(crate) fn binding_json(api: &str, k: &Key) -> Value {
    let this = format!("{api}/v3/service_credential_bindings/{}", k.guid);
    json!({
        "guid": k.guid,
        "created_at": timestamp(k.created_at),
        "updated_at": timestamp(k.updated_at),
        "name": k.name,
        "type": "key",
        "last_operation": {"type": k.operation, "state": k.state, "description": k.description,
                           "created_at": timestamp(k.created_at), "updated_at": timestamp(k.updated_at)},
        "metadata": metadata(&k.metadata),
        "relationships": {"service_instance": {"data": {"guid": k.instance_guid}}},
        "links": {
            "self": {"href": this},
            "details": {"href": format!("{this}/details")},
            "service_instance": {"href": format!("{api}/v3/service_instances/{}", k.instance_guid)},
            "parameters": {"href": format!("{this}/parameters")}
        }
    })
}

fn unprocessable(detail: &str) -> Response {
    cf_error(422, 10008, "CF-UnprocessableEntity", detail)
}

fn refusal(refused: Refused) -> Response {
    match refused {
        Refused::Unprocessable(detail) => unprocessable(&detail),
        Refused::NotFound => cf_error(
            404,
            10010,
            "CF-ResourceNotFound",
            "Service credential binding not found",
        ),
        Refused::NotReady(detail) => cf_error(404, 10010, "CF-ResourceNotFound", &detail),
        Refused::ParametersNotSupported => cf_error(
            400,
            90007,
            "CF-ServiceFetchBindingParametersNotSupported",
            &Refused::ParametersNotSupported.to_string(),
        ),
    }
}

/// `202 Accepted` with the job to poll in `Location`, as `head :accepted` sends it.
fn accepted(state: &SimState, job_guid: &str) -> Response {
    let location = format!("{}/v3/jobs/{job_guid}", state.api_base());
    (StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response()
}

/// `POST /v3/service_credential_bindings`.
pub(crate) async fn create(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let new = match create_message(&body) {
        Ok(new) => new,
        Err(answer) => return answer,
    };
    let now = sim_now(&state);
    match state.with_world(|w| operations::create_key(w, new, now)) {
        Ok(started) => accepted(&state, &started.job_guid),
        Err(refused) => refusal(refused),
    }
}

/// The top-level fields `ServiceCredentialBindingCreateMessage` allows.
const CREATE_FIELDS: &[&str] = &[
    "type",
    "strategy",
    "name",
    "relationships",
    "parameters",
    "metadata",
];

/// Validates a create request as the Cloud Controller's messages do, into a [`NewKey`], or
/// the answer that refuses it.
#[allow(clippy::result_large_err)]
fn create_message(body: &[u8]) -> Result<NewKey, Response> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(cf_error(
            400,
            1001,
            "CF-MessageParseError",
            "Request invalid due to parse error: invalid request body",
        ));
    };
    let mut errors = Vec::new();
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !CREATE_FIELDS.contains(k))
        .collect();
    if !unknown.is_empty() {
        errors.push(format!("Unknown field(s): '{}'", unknown.join("', '")));
    }
    let instance_guid = relationships(body.get("relationships"), &mut errors);
    let parameters = match body.get("parameters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p.clone()),
        Some(_) => {
            errors.push("Parameters must be an object".into());
            None
        }
    };
    let kind = body.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("app" | "key")) {
        errors.push("Type must be 'app' or 'key'".into());
    }
    let metadata = metadata_message(body.get("metadata"), &mut errors);
    if errors.is_empty() && kind == Some("app") {
        // No app exists in the simulator.
        let app = body["relationships"]["app"]["data"]["guid"]
            .as_str()
            .unwrap_or_default();
        errors.push(format!("The app could not be found: '{app}'"));
    }
    if errors.is_empty() {
        key_fields(&body, &mut errors);
    }
    if !errors.is_empty() {
        return Err(unprocessable(&errors.join(", ")));
    }
    Ok(NewKey {
        name: body["name"].as_str().unwrap_or_default().into(),
        instance_guid: instance_guid.unwrap_or_default(),
        parameters,
        metadata,
    })
}

/// The service instance's guid from `relationships` (`RelationshipValidator`,
/// `ToOneRelationshipValidator`), noting what is wrong.
fn relationships(relationships: Option<&Value>, errors: &mut Vec<String>) -> Option<String> {
    let Some(Value::Object(r)) = relationships else {
        errors.push("Relationships 'relationships' is not an object".into());
        return None;
    };
    if r.is_empty() {
        errors.push(
            "Relationships 'relationships' must include one or more valid relationships".into(),
        );
        return None;
    }
    let guid = r
        .get("service_instance")
        .and_then(|s| s.get("data"))
        .and_then(|d| d.get("guid"))
        .and_then(Value::as_str)
        .filter(|g| (1..=200).contains(&g.len()));
    if guid.is_none() {
        errors.push(
            "Relationships Service instance must be structured like this: \"service_instance: {\"data\": {\"guid\": \"valid-guid\"}}\""
                .into(),
        );
    }
    guid.map(str::to_owned)
}

/// What `ServiceCredentialKeyBindingCreateMessage` adds: a name, and no relationship but the
/// service instance.
fn key_fields(body: &Map<String, Value>, errors: &mut Vec<String>) {
    match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => {}
        Some(Value::String(_)) => errors.push("Name can't be blank".into()),
        None | Some(Value::Null) => {
            errors.push("Name must be a string".into());
            errors.push("Name can't be blank".into());
        }
        Some(_) => errors.push("Name must be a string".into()),
    }
    let extra: Vec<&str> = body["relationships"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.keys())
        .map(String::as_str)
        .filter(|k| *k != "service_instance")
        .collect();
    if !extra.is_empty() {
        errors.push(format!(
            "Relationships Unknown field(s): '{}'",
            extra.join("', '")
        ));
    }
}

/// `metadata` of a create request (`MetadataValidator`: an object of `labels` and
/// `annotations` objects). Values must be strings here; the key and value syntax rules of
/// labels are not checked.
fn metadata_message(metadata: Option<&Value>, errors: &mut Vec<String>) -> Metadata {
    let mut out = Metadata::default();
    let Some(metadata) = metadata else {
        return out;
    };
    let Value::Object(m) = metadata else {
        errors.push("Metadata must be an object".into());
        return out;
    };
    let unexpected: Vec<String> = m
        .keys()
        .filter(|k| *k != "labels" && *k != "annotations")
        .map(|k| format!("'{k}'"))
        .collect();
    if !unexpected.is_empty() {
        errors.push(format!(
            "Metadata has unexpected field(s): {}",
            unexpected.join(" ")
        ));
    }
    for (field, target) in [
        ("labels", &mut out.labels),
        ("annotations", &mut out.annotations),
    ] {
        match m.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(values)) => {
                for (k, v) in values {
                    match v {
                        Value::String(v) => {
                            target.insert(k.clone(), v.clone());
                        }
                        Value::Null => {}
                        _ => errors.push(format!("Metadata {field} values must be strings")),
                    }
                }
            }
            Some(_) => errors.push(format!("Metadata '{field}' is not an object")),
        }
    }
    out
}

/// `GET /v3/service_credential_bindings/:guid`.
pub(crate) async fn show(State(state): State<Arc<SimState>>, Path(guid): Path<String>) -> Response {
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    match world.key_by_guid(&guid) {
        Some(k) => Json(binding_json(state.api_base(), k)).into_response(),
        None => refusal(Refused::NotFound),
    }
}

/// `DELETE /v3/service_credential_bindings/:guid`.
pub(crate) async fn delete(
    State(state): State<Arc<SimState>>,
    Path(guid): Path<String>,
) -> Response {
    let now = sim_now(&state);
    match state.with_world(|w| operations::delete_key(w, &guid, now)) {
        Ok(job) => accepted(&state, &job),
        Err(refused) => refusal(refused),
    }
}

/// `GET /v3/service_credential_bindings/:guid/parameters`.
pub(crate) async fn parameters(
    State(state): State<Arc<SimState>>,
    Path(guid): Path<String>,
) -> Response {
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    match operations::parameters(&world, &guid) {
        Ok(parameters) => Json(parameters).into_response(),
        Err(refused) => refusal(refused),
    }
}

/// `GET /v3/jobs/:guid` (`job_presenter.rb`).
pub(crate) async fn job(State(state): State<Arc<SimState>>, Path(guid): Path<String>) -> Response {
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    let Some(job) = world.job(&guid) else {
        return cf_error(404, 10010, "CF-ResourceNotFound", "Job not found");
    };
    let api = state.api_base();
    let mut links = json!({"self": {"href": format!("{api}/v3/jobs/{}", job.guid)}});
    if world.key_by_guid(&job.key_guid).is_some() {
        links["service_credential_binding"] = json!({
            "href": format!("{api}/v3/service_credential_bindings/{}", job.key_guid)
        });
    }
    let errors: Vec<Value> = job
        .error
        .iter()
        .map(|e| json!({"code": e.code, "title": e.title, "detail": e.detail}))
        .collect();
    Json(json!({
        "guid": job.guid,
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "operation": job.operation.name(),
        "state": job.state.name(),
        "errors": errors,
        "warnings": [],
        "links": links,
    }))
    .into_response()
}

/// Query parameters of `/v3/service_offerings` besides paging (`service_offerings_list_message.rb`).
const OFFERING_PARAMS: &[&str] = &[
    "names",
    "broker_catalog_ids",
    "service_broker_guids",
    "service_broker_names",
    "space_guids",
    "organization_guids",
    "available",
    "fields[service_broker]",
];

/// The simulated broker of an offering: one per offering, named after it.
fn broker_of(o: &Offering) -> (String, String) {
    let tail = o.guid.get(8..).unwrap_or_default();
    (format!("0000b40c{tail}"), format!("{}-broker", o.name))
}

fn catalog_id(o: &Offering) -> String {
    format!("0000ca7a{}", o.guid.get(8..).unwrap_or_default())
}

/// An offering as `service_offering_presenter.rb` shows it.
fn offering_json(api: &str, o: &Offering) -> Value {
    let (broker_guid, _) = broker_of(o);
    json!({
        "guid": o.guid,
        "name": o.name,
        "description": format!("{} (simulated)", o.name),
        "available": true,
        "tags": [],
        "requires": [],
        "created_at": timestamp(crate::world::CREATED_AT),
        "updated_at": timestamp(crate::world::CREATED_AT),
        "shareable": false,
        "documentation_url": null,
        "broker_catalog": {
            "id": catalog_id(o),
            "metadata": {},
            "features": {
                "plan_updateable": false,
                "bindable": true,
                "instances_retrievable": false,
                "bindings_retrievable": o.bindings_retrievable,
                "allow_context_updates": false
            }
        },
        "relationships": {"service_broker": {"data": {"guid": broker_guid}}},
        "metadata": metadata(&Metadata::default()),
        "links": {
            "self": {"href": format!("{api}/v3/service_offerings/{}", o.guid)},
            "service_plans": {"href": format!("{api}/v3/service_plans?service_offering_guids={}", o.guid)},
            "service_broker": {"href": format!("{api}/v3/service_brokers/{broker_guid}")}
        }
    })
}

/// The offerings a list request selects. Every simulated plan is public, so `space_guids` and
/// `organization_guids` select every offering, and every offering is available.
fn select_offerings<'w>(world: &'w World, query: &crate::server::Query) -> Vec<&'w Offering> {
    let names = query.list("names");
    let catalog_ids = query.list("broker_catalog_ids");
    let broker_guids = query.list("service_broker_guids");
    let broker_names = query.list("service_broker_names");
    let one_of = |filter: &Option<Vec<String>>, v: &str| {
        filter.as_ref().is_none_or(|f| f.iter().any(|x| x == v))
    };
    world
        .offerings
        .iter()
        .filter(|o| one_of(&names, &o.name) && one_of(&catalog_ids, &catalog_id(o)))
        .filter(|o| {
            let (guid, name) = broker_of(o);
            one_of(&broker_guids, &guid) && one_of(&broker_names, &name)
        })
        .filter(|_| query.get("available") != Some("false"))
        .collect()
}

/// `GET /v3/service_offerings`.
pub(crate) async fn list_offerings(
    State(state): State<Arc<SimState>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (query, page, per_page) = match list_request(&state, raw, OFFERING_PARAMS) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let selector = match LabelSelector::from_query(&query) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    let selected: Vec<&Offering> = select_offerings(&world, &query)
        .into_iter()
        .filter(|_| selector.matches(&Metadata::default()))
        .collect();
    let (range, pagination) = paginate(
        &state,
        "/v3/service_offerings",
        &query,
        selected.len(),
        page,
        per_page,
    );
    let on_page = &selected[range];
    let api = state.api_base();
    let resources: Vec<Value> = on_page.iter().map(|o| offering_json(api, o)).collect();
    let mut body = json!({"pagination": pagination, "resources": resources});
    if let Some(fields) = query.get("fields[service_broker]") {
        let brokers: Vec<Value> = on_page
            .iter()
            .map(|o| {
                let (guid, name) = broker_of(o);
                let mut b = Map::new();
                for field in fields.split(',') {
                    match field {
                        "guid" => b.insert("guid".into(), guid.clone().into()),
                        "name" => b.insert("name".into(), name.clone().into()),
                        _ => None,
                    };
                }
                Value::Object(b)
            })
            .collect();
        body["included"] = json!({"service_brokers": brokers});
    }
    Json(body).into_response()
}

/// `GET /v3/service_offerings/:guid`.
pub(crate) async fn show_offering(
    State(state): State<Arc<SimState>>,
    Path(guid): Path<String>,
) -> Response {
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    match world.offerings.iter().find(|o| o.guid == guid) {
        Some(o) => Json(offering_json(state.api_base(), o)).into_response(),
        None => cf_error(
            404,
            10010,
            "CF-ResourceNotFound",
            "Service offering not found",
        ),
    }
}
