//! Turns V3 list pages into the keys of one foundation: instances with their org, space, plan
//! and offering names resolved through `included`, keys with their creation time and change
//! markers, each key's owners (the configured metadata keys found on the key, else its
//! instance, else its space, else its org) and its owner's lead time (the configured
//! annotation, nearest first in the same way; see [`crate::lead_time`]).
//!
//! Pure: pages in, [`ListedKey`]s out, no I/O and no clock, so the joining is unit-tested with
//! recorded V3 pages (`fixtures/`). Strings repeated across keys (names, owner values) are
//! shared through one [`Interner`] per refresh.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::model::{CredentialBinding, LastOperation, Metadata, Page, ServiceInstance, Space};
use crate::lead_time::LeadTime;
use crate::rotation::KeyFacts;
use crate::snapshot::KeyLabels;

/// Owner values of one resource or key, in the order of the configured metadata keys.
pub type Owners = Arc<[Option<Arc<str>>]>;

/// Shares equal strings between keys, as 20,000 keys name a few dozen orgs and teams.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.0.get(s) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(s);
        self.0.insert(new.clone());
        new
    }
}

/// The metadata keys read from the list pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataKeys {
    /// The keys whose values become owner labels (`--metadata-labels`), in order.
    pub owners: Vec<String>,
    /// The annotation holding an owner's lead time (`--lead-time-annotation`).
    pub lead_time: Option<String>,
    /// The annotation on a key naming the key it succeeds (`--successor-annotation`), read on
    /// keys only.
    pub successor_of: Option<String>,
}

/// What one resource's metadata says for the [`MetadataKeys`].
#[derive(Debug, Clone)]
pub struct Found {
    pub owners: Owners,
    /// The lead-time annotation, as written (checked at the join, once the nearest is known).
    pub lead_time: Option<Arc<str>>,
}

/// A value of `map`, an empty or null one counting as not found.
fn found<'m>(
    map: &'m std::collections::BTreeMap<String, Option<String>>,
    key: &str,
) -> Option<&'m str> {
    map.get(key)?.as_deref().filter(|v| !v.is_empty())
}

impl MetadataKeys {
    /// Nothing is read from the metadata of spaces and orgs: the spaces listing is not needed.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty() && self.lead_time.is_none()
    }

    /// What one resource says. For owners a label wins over an annotation of the same key
    /// (both are the owner's word, labels are the ones meant for selection); the lead time is
    /// an annotation only.
    pub fn values(&self, metadata: &Metadata, names: &mut Interner) -> Found {
        Found {
            owners: self
                .owners
                .iter()
                .map(|key| {
                    found(&metadata.labels, key)
                        .or_else(|| found(&metadata.annotations, key))
                        .map(|value| names.get(value))
                })
                .collect(),
            lead_time: (self.lead_time.as_deref())
                .and_then(|key| found(&metadata.annotations, key))
                .map(|value| names.get(value)),
        }
    }

    fn none(&self) -> Found {
        Found {
            owners: self.owners.iter().map(|_| None).collect(),
            lead_time: None,
        }
    }
}

/// The levels a key's metadata is looked up at, nearest first (the names log lines use).
const LEVELS: [&str; 4] = ["key", "service instance", "space", "org"];

/// The lead time of the nearest level that sets one, each distinct value (and level) read
/// once per refresh: an org's annotation is shared by thousands of keys.
#[derive(Debug, Default)]
struct LeadTimes(HashMap<(Arc<str>, usize), LeadTime>);

impl LeadTimes {
    fn nearest(&mut self, levels: &[&Found; 4]) -> LeadTime {
        let Some((level, value)) =
            (levels.iter().enumerate()).find_map(|(i, found)| Some((i, found.lead_time.clone()?)))
        else {
            return LeadTime::Unset;
        };
        self.0
            .entry((value, level))
            .or_insert_with_key(|(value, level)| LeadTime::parse(value, LEVELS[*level]))
            .clone()
    }
}

/// For each wanted key, the first value found, nearest level first.
fn nearest(levels: &[&Owners]) -> Owners {
    let len = levels.first().map_or(0, |l| l.len());
    (0..len)
        .map(|i| {
            levels
                .iter()
                .find_map(|level| level.get(i).cloned().flatten())
        })
        .collect()
}

/// A managed service instance with its names resolved.
#[derive(Debug, Clone)]
pub struct Instance {
    pub guid: Arc<str>,
    pub name: Arc<str>,
    pub org: Arc<str>,
    pub space: Arc<str>,
    pub offering: Arc<str>,
    pub plan: Arc<str>,
    pub offering_guid: Arc<str>,
    pub updated_at: Arc<str>,
    pub space_guid: String,
    pub metadata: Found,
}

/// Collects the pages of `/v3/service_instances?fields[...]` and resolves names at the end
/// (a page's `included` only covers that page's instances, but nothing is lost by waiting).
#[derive(Debug, Default)]
pub struct InstancePages {
    spaces: HashMap<String, (Arc<str>, String)>,
    orgs: HashMap<String, Arc<str>>,
    plans: HashMap<String, (Arc<str>, String)>,
    offerings: HashMap<String, Arc<str>>,
    instances: Vec<(ServiceInstance, Found)>,
}

impl InstancePages {
    pub fn add(
        &mut self,
        page: Page<ServiceInstance>,
        wanted: &MetadataKeys,
        names: &mut Interner,
    ) {
        let inc = page.included;
        // A space names its org, a plan its offering: each is kept with its parent's guid.
        let parent = |to: &super::model::ToOne| to.guid().unwrap_or_default().to_owned();
        for s in inc.spaces {
            let org = parent(&s.relationships.organization);
            self.spaces.insert(s.guid, (names.get(&s.name), org));
        }
        for p in inc.service_plans {
            let offering = parent(&p.relationships.service_offering);
            self.plans.insert(p.guid, (names.get(&p.name), offering));
        }
        for o in inc.organizations {
            self.orgs.insert(o.guid, names.get(&o.name));
        }
        for o in inc.service_offerings {
            self.offerings.insert(o.guid, names.get(&o.name));
        }
        for si in page.resources {
            let found = wanted.values(&si.metadata, names);
            self.instances.push((si, found));
        }
    }

    /// Every instance by guid. Names the API did not include (it should always) are shown as
    /// `unknown`: a key must not vanish from alerting because a name is missing.
    pub fn finish(self, names: &mut Interner) -> HashMap<String, Instance> {
        let unknown = names.get("unknown");
        let mut out = HashMap::with_capacity(self.instances.len());
        for (si, metadata) in self.instances {
            let space_guid = si.relationships.space.guid().unwrap_or_default().to_owned();
            let (space, org_guid) = self
                .spaces
                .get(&space_guid)
                .map(|(name, org)| (name.clone(), org.as_str()))
                .unwrap_or((unknown.clone(), ""));
            let org = self
                .orgs
                .get(org_guid)
                .cloned()
                .unwrap_or_else(|| unknown.clone());
            let (plan, offering_guid) = si
                .relationships
                .service_plan
                .as_ref()
                .and_then(|p| p.guid())
                .and_then(|g| self.plans.get(g))
                .map(|(name, offering)| (name.clone(), offering.as_str()))
                .unwrap_or((unknown.clone(), ""));
            let offering = self
                .offerings
                .get(offering_guid)
                .cloned()
                .unwrap_or_else(|| unknown.clone());
            let guid: Arc<str> = Arc::from(si.guid.as_str());
            out.insert(
                si.guid,
                Instance {
                    guid,
                    name: names.get(&si.name),
                    org,
                    space,
                    offering,
                    plan,
                    offering_guid: names.get(offering_guid),
                    updated_at: names.get(si.updated_at.as_deref().unwrap_or_default()),
                    space_guid,
                    metadata,
                },
            );
        }
        out
    }
}

/// A service key as listed (without its credentials).
#[derive(Debug, Clone)]
pub struct Key {
    pub guid: String,
    pub name: String,
    pub instance_guid: Option<String>,
    /// The binding's `created_at`, Unix seconds.
    pub created_at: Option<i64>,
    pub updated_at: String,
    /// The key is fully created and not being deleted: one still being created, or being
    /// deleted, answers `/details` with 404.
    pub ready: bool,
    pub metadata: Found,
    /// The successor annotation on the key (a key's name or guid).
    pub successor_of: Option<Arc<str>>,
}

/// The keys of one `/v3/service_credential_bindings?type=key` page.
pub fn keys(
    page: Page<CredentialBinding>,
    wanted: &MetadataKeys,
    names: &mut Interner,
) -> Vec<Key> {
    page.resources
        .into_iter()
        .map(|b| Key {
            ready: b.last_operation.as_ref().is_none_or(readable),
            successor_of: (wanted.successor_of.as_deref())
                .and_then(|key| found(&b.metadata.annotations, key))
                .map(|value| names.get(value)),
            instance_guid: b.relationships.service_instance.guid().map(str::to_owned),
            name: b.name.unwrap_or_default(),
            created_at: b.created_at.as_deref().and_then(parse_timestamp),
            updated_at: b.updated_at.unwrap_or_default(),
            metadata: wanted.values(&b.metadata, names),
            guid: b.guid,
        })
        .collect()
}

/// Whether a key's details can be read after this last operation: not while it is being
/// created (or its creation failed), nor while it is being deleted (the Cloud Controller
/// answers 404 "Deletion of service key in progress"). A failed deletion leaves a key that
/// still exists, so it is read (and its 404 shows as a read error).
fn readable(op: &LastOperation) -> bool {
    match op.kind.as_str() {
        "create" => op.state == "succeeded",
        "delete" => op.state != "in progress",
        _ => true,
    }
}

/// A V3 timestamp (`2020-03-10T15:49:29Z`) in Unix seconds.
pub fn parse_timestamp(timestamp: &str) -> Option<i64> {
    OffsetDateTime::parse(timestamp, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// The metadata of spaces and orgs, from `/v3/spaces?include=organization` pages.
#[derive(Debug, Default)]
pub struct SpaceMetadata {
    spaces: HashMap<String, (String, Found)>,
    orgs: HashMap<String, Found>,
}

impl SpaceMetadata {
    pub fn add(&mut self, page: Page<Space>, wanted: &MetadataKeys, names: &mut Interner) {
        for o in page.included.organizations {
            let values = wanted.values(&o.metadata, names);
            self.orgs.insert(o.guid, values);
        }
        for s in page.resources {
            let org = s
                .relationships
                .organization
                .guid()
                .unwrap_or_default()
                .to_owned();
            let values = wanted.values(&s.metadata, names);
            self.spaces.insert(s.guid, (org, values));
        }
    }
}

/// A key joined with its instance: everything the list pages say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub labels: KeyLabels,
    pub created_at: Option<i64>,
    pub key_updated_at: Arc<str>,
    pub instance_updated_at: Arc<str>,
    pub owners: Owners,
    pub lead_time: LeadTime,
    pub facts: KeyFacts,
}

/// Joins keys to their instances (and, with metadata keys, to their spaces and orgs). A key of
/// an instance that is not listed (another plan, or created between the two list calls) is left
/// for the next refresh; one still being created is skipped until it is ready, and one being
/// deleted is gone already.
pub fn join(
    instances: &HashMap<String, Instance>,
    keys: Vec<Key>,
    spaces: &SpaceMetadata,
    wanted: &MetadataKeys,
    names: &mut Interner,
) -> Vec<ListedKey> {
    let none = wanted.none();
    let mut lead_times = LeadTimes::default();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(instance) = key.instance_guid.as_deref().and_then(|g| instances.get(g)) else {
            continue;
        };
        if !key.ready {
            continue;
        }
        let (owners, lead_time) = if wanted.is_empty() {
            (none.owners.clone(), LeadTime::Unset)
        } else {
            let (org_guid, space) = spaces
                .spaces
                .get(&instance.space_guid)
                .map(|(org, values)| (org.as_str(), values))
                .unwrap_or(("", &none));
            let org = spaces.orgs.get(org_guid).unwrap_or(&none);
            let levels = [&key.metadata, &instance.metadata, space, org];
            let owners = if wanted.owners.is_empty() {
                none.owners.clone()
            } else {
                nearest(&levels.map(|l| &l.owners))
            };
            (owners, lead_times.nearest(&levels))
        };
        out.push(ListedKey {
            labels: KeyLabels {
                org: instance.org.clone(),
                space: instance.space.clone(),
                service_offering: instance.offering.clone(),
                service_plan: instance.plan.clone(),
                service_instance: instance.name.clone(),
                service_key: names.get(&key.name),
                service_key_guid: Arc::from(key.guid.as_str()),
            },
            created_at: key.created_at,
            key_updated_at: Arc::from(key.updated_at.as_str()),
            instance_updated_at: instance.updated_at.clone(),
            owners,
            lead_time,
            facts: KeyFacts {
                instance_guid: instance.guid.clone(),
                offering_guid: instance.offering_guid.clone(),
                successor_of: key.successor_of,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<T: serde::de::DeserializeOwned>(json: &str) -> Page<T> {
        serde_json::from_str(json).expect("a recorded V3 page")
    }

    const INSTANCES_1: &str = include_str!("fixtures/service_instances_page1.json");
    const INSTANCES_2: &str = include_str!("fixtures/service_instances_page2.json");
    const BINDINGS: &str = include_str!("fixtures/service_credential_bindings.json");
    const SPACES: &str = include_str!("fixtures/spaces_include_organization.json");

    const LEAD: &str = "example.com/warning-lead-time";

    fn owner_keys() -> MetadataKeys {
        MetadataKeys {
            owners: vec![
                "team".into(),
                "example.com/owner".into(),
                "cost-center".into(),
            ],
            lead_time: None,
            successor_of: None,
        }
    }

    fn lead_key() -> MetadataKeys {
        MetadataKeys {
            owners: Vec::new(),
            lead_time: Some(LEAD.into()),
            successor_of: None,
        }
    }

    fn listed(wanted: &MetadataKeys) -> Vec<ListedKey> {
        let mut names = Interner::default();
        let mut pages = InstancePages::default();
        pages.add(page(INSTANCES_1), wanted, &mut names);
        pages.add(page(INSTANCES_2), wanted, &mut names);
        let instances = pages.finish(&mut names);
        let keys = keys(page(BINDINGS), wanted, &mut names);
        let mut spaces = SpaceMetadata::default();
        if !wanted.is_empty() {
            spaces.add(page(SPACES), wanted, &mut names);
        }
        join(&instances, keys, &spaces, wanted, &mut names)
    }

    fn by_name<'a>(keys: &'a [ListedKey], name: &str) -> &'a ListedKey {
        keys.iter()
            .find(|k| &*k.labels.service_key == name)
            .unwrap_or_else(|| panic!("no key {name}"))
    }

    #[test]
    fn names_come_from_included_across_pages() {
        let keys = listed(&MetadataKeys::default());
        let k = by_name(&keys, "s4-inbound");
        assert_eq!(
            k.labels.values(),
            [
                "acme-prod",
                "integration",
                "it-rt",
                "integration-flow",
                "cpi-runtime",
                "s4-inbound",
                "6a2c1d9e-0b8f-4b55-9d3e-4c1f7e2a9b01"
            ]
        );
        // The instance on the second page, in another org, with another plan.
        let k = by_name(&keys, "x509-client");
        assert_eq!(&*k.labels.org, "acme-dev");
        assert_eq!(&*k.labels.service_plan, "application");
        assert_eq!(&*k.labels.service_offering, "xsuaa");
    }

    #[test]
    fn keys_being_created_and_keys_of_unlisted_instances_are_left_out() {
        let keys = listed(&MetadataKeys::default());
        let names: Vec<&str> = keys.iter().map(|k| &*k.labels.service_key).collect();
        assert!(!names.contains(&"being-created"), "{names:?}");
        assert!(!names.contains(&"other-plan-key"), "{names:?}");
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn creation_time_and_change_markers_come_from_the_list_page() {
        let keys = listed(&MetadataKeys::default());
        let k = by_name(&keys, "s4-inbound");
        assert_eq!(k.created_at, Some(1_687_783_827)); // 2023-06-26T12:50:27Z
        assert_eq!(&*k.key_updated_at, "2023-06-29T10:30:27Z");
        assert_eq!(&*k.instance_updated_at, "2023-05-02T08:00:00Z");
    }

    #[test]
    fn owners_are_taken_from_the_nearest_level() {
        let owners = owner_keys();
        let keys = listed(&owners);
        let values = |name: &str| -> Vec<Option<String>> {
            by_name(&keys, name)
                .owners
                .iter()
                .map(|v| v.as_deref().map(str::to_owned))
                .collect()
        };
        // team: on the key (payments) over the instance (integration) and the org (platform);
        // example.com/owner: a space annotation; cost-center: an org label.
        assert_eq!(
            values("s4-inbound"),
            [
                Some("payments".to_owned()),
                Some("integration@acme.example".to_owned()),
                Some("4711".to_owned())
            ]
        );
        // team from the instance, owner from the space, nothing for cost-center in acme-dev.
        assert_eq!(
            values("partner-edi"),
            [
                Some("integration".to_owned()),
                Some("integration@acme.example".to_owned()),
                Some("4711".to_owned())
            ]
        );
        assert_eq!(
            values("x509-client"),
            [None, Some("dev@acme.example".to_owned()), None]
        );
    }

    #[test]
    fn without_owner_keys_no_owner_is_read() {
        let keys = listed(&MetadataKeys::default());
        assert!(keys.iter().all(|k| k.owners.is_empty()));
        assert!(keys.iter().all(|k| k.lead_time == LeadTime::Unset));
        // Nor with a lead-time annotation alone.
        assert!(listed(&lead_key()).iter().all(|k| k.owners.is_empty()));
    }

    #[test]
    fn the_lead_time_is_the_nearest_annotation_and_an_invalid_one_says_where_it_sits() {
        let keys = listed(&lead_key());
        let lead = |name: &str| by_name(&keys, name).lead_time.clone();
        // On the key itself.
        assert_eq!(lead("s4-inbound"), LeadTime::Valid(60 * 86_400));
        // From the org: the instance's label of that name is not the annotation.
        assert_eq!(lead("partner-edi"), LeadTime::Valid(8 * 7 * 86_400));
        // The instance's empty value is not found; the space's "60" has no unit.
        let LeadTime::Invalid(invalid) = lead("x509-client") else {
            panic!("{:?}", lead("x509-client"))
        };
        assert_eq!((invalid.level, invalid.excerpt.as_str()), ("space", "60"));
        // Without the owners' keys configured, the owners stay unread.
        assert!(keys.iter().all(|k| k.owners.is_empty()));
        // Without the annotation configured, no lead time is read.
        assert!(listed(&owner_keys())
            .iter()
            .all(|k| k.lead_time == LeadTime::Unset));
    }

    #[test]
    fn a_label_wins_over_an_annotation_of_the_same_key_and_empty_values_are_not_found() {
        let metadata: Metadata = serde_json::from_value(serde_json::json!({
            "labels": {"team": "from-label", "empty": ""},
            "annotations": {"team": "from-annotation", "empty": "x", "null": null}
        }))
        .unwrap();
        let wanted = MetadataKeys {
            owners: vec!["team".into(), "empty".into(), "null".into()],
            lead_time: Some("team".into()),
            successor_of: None,
        };
        let found = wanted.values(&metadata, &mut Interner::default());
        assert_eq!(found.owners[0].as_deref(), Some("from-label"));
        assert_eq!(found.owners[1].as_deref(), Some("x"));
        assert_eq!(found.owners[2].as_deref(), None);
        // The lead time is read from annotations only.
        assert_eq!(found.lead_time.as_deref(), Some("from-annotation"));
    }

    #[test]
    fn keys_being_created_or_deleted_are_not_readable_and_a_failed_deletion_is() {
        let op = |kind: &str, state: &str| LastOperation {
            kind: kind.into(),
            state: state.into(),
        };
        assert!(readable(&op("create", "succeeded")));
        assert!(!readable(&op("create", "in progress")));
        assert!(!readable(&op("create", "failed")));
        assert!(!readable(&op("delete", "in progress")));
        assert!(readable(&op("delete", "failed")));
        assert!(readable(&op("update", "in progress")));
    }

    #[test]
    fn a_key_carries_its_instance_offering_and_successor_annotation() {
        let wanted = MetadataKeys {
            successor_of: Some("example.com/successor-of".into()),
            ..MetadataKeys::default()
        };
        let mut names = Interner::default();
        let mut pages = InstancePages::default();
        pages.add(page(INSTANCES_1), &wanted, &mut names);
        pages.add(page(INSTANCES_2), &wanted, &mut names);
        let instances = pages.finish(&mut names);
        let mut bindings: serde_json::Value = serde_json::from_str(BINDINGS).unwrap();
        let partner = bindings["resources"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|b| b["name"] == "partner-edi")
            .unwrap();
        partner["metadata"]["annotations"]["example.com/successor-of"] = "s4-inbound".into();
        let keys = keys(
            serde_json::from_value(bindings).unwrap(),
            &wanted,
            &mut names,
        );
        let joined = join(
            &instances,
            keys,
            &SpaceMetadata::default(),
            &wanted,
            &mut names,
        );
        let k = by_name(&joined, "partner-edi");
        assert_eq!(k.facts.successor_of.as_deref(), Some("s4-inbound"));
        assert!(!k.facts.instance_guid.is_empty());
        assert!(!k.facts.offering_guid.is_empty());
        assert_eq!(by_name(&joined, "s4-inbound").facts.successor_of, None);
    }
}
