//! The simulated foundation's data: orgs, spaces, offerings, plans, instances and keys.
//!
//! Built with small helpers (`org`, `space`, `instance`, `key`) that return guids, so a test
//! says what it plants in a few lines. Guids are deterministic (a counter), creation order is
//! insertion order, as the Cloud Controller's default `order_by=created_at` lists them.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct Org {
    pub guid: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Space {
    pub guid: String,
    pub name: String,
    pub org_guid: String,
}

#[derive(Debug, Clone)]
pub struct Offering {
    pub guid: String,
    pub name: String,
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
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub guid: String,
    pub name: String,
    pub instance_guid: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub credentials: Value,
    /// `last_operation.state` of the key's creation (`succeeded`, `in progress`, `failed`).
    pub state: &'static str,
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
}

/// A fixed creation time, so listings are reproducible.
pub const CREATED_AT: OffsetDateTime = time::macros::datetime!(2025-01-01 00:00:00 UTC);

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    fn guid(&mut self, kind: u16) -> String {
        self.next_guid += 1;
        format!("{kind:08x}-0000-4000-8000-{:012x}", self.next_guid)
    }

    pub fn org(&mut self, name: &str) -> String {
        let guid = self.guid(0x0e9);
        self.orgs.push(Org {
            guid: guid.clone(),
            name: name.into(),
        });
        guid
    }

    pub fn space(&mut self, org_guid: &str, name: &str) -> String {
        let guid = self.guid(0x5ace);
        self.spaces.push(Space {
            guid: guid.clone(),
            name: name.into(),
            org_guid: org_guid.into(),
        });
        guid
    }

    /// The plan `plan` of offering `offering`, created on first use.
    pub fn plan(&mut self, offering: &str, plan: &str) -> String {
        let offering_guid = match self.offerings.iter().find(|o| o.name == offering) {
            Some(o) => o.guid.clone(),
            None => {
                let guid = self.guid(0x0ff);
                self.offerings.push(Offering {
                    guid: guid.clone(),
                    name: offering.into(),
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
        self.instances.push(Instance {
            guid: guid.clone(),
            name: name.into(),
            space_guid: space_guid.into(),
            plan_guid: Some(plan_guid),
            updated_at: CREATED_AT,
        });
        guid
    }

    /// A user-provided instance (it can have no keys).
    pub fn user_provided(&mut self, space_guid: &str, name: &str) -> String {
        let guid = self.guid(0x0ba);
        self.instances.push(Instance {
            guid: guid.clone(),
            name: name.into(),
            space_guid: space_guid.into(),
            plan_guid: None,
            updated_at: CREATED_AT,
        });
        guid
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
            state: "succeeded",
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

    /// Deletes a key.
    pub fn delete_key(&mut self, guid: &str) -> bool {
        let Some(i) = self.key_index.remove(guid) else {
            return false;
        };
        self.keys.remove(i);
        for (pos, key) in self.keys.iter().enumerate().skip(i) {
            self.key_index.insert(key.guid.clone(), pos);
        }
        true
    }

    /// "Rotates" a key as a user would with the cf CLI: a new key (new guid, new credentials)
    /// with the same name, and the old one deleted. Returns the new guid.
    pub fn rotate_key(&mut self, guid: &str, credentials: Value) -> Option<String> {
        let old = self.keys.iter().find(|k| k.guid == guid)?.clone();
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
}
