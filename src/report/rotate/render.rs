//! Rotation plans as text for people and JSON for scripts.
//!
//! The JSON is `{"generated_at": ..., "keys": [KeyPlan, ...]}`, each step's request as data
//! (`method`, `path`, `body`), so a script can run them. The text shows the same: per key its
//! place, expiry, owners and parameters (and where they came from), then the numbered steps,
//! each with its `cf` command (shell-quoted) and its request. Names are free text: in the text
//! and the JSON, control characters and bidirectional overrides are escaped as the report
//! escapes them, so a name cannot move the cursor, forge a line or reorder what is shown.
//! Neither holds a credential value: a plan is built from names, guids, dates, owners,
//! parameters and the key's shape only.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::{KeyPlan, Status};
use super::run::Plans;
use crate::report::{rfc3339, safe, safe_json, time_left};

#[derive(Serialize)]
struct Document<'a> {
    generated_at: String,
    keys: &'a [KeyPlan],
}

/// Pretty-printed JSON.
pub fn json(plans: &Plans) -> Result<String, serde_json::Error> {
    safe_json(&Document {
        generated_at: rfc3339(plans.now),
        keys: &plans.keys,
    })
}

/// Free text with every character that must not reach a terminal raw escaped (control
/// characters, bidirectional overrides: [`crate::report::safe`]).
fn shown(s: &str) -> String {
    safe(s).into_owned()
}

/// The plans for people.
pub fn text(plans: &Plans) -> String {
    let mut out = String::new();
    if plans.keys.is_empty() {
        out.push_str("no key selected: nothing to rotate\n");
        return out;
    }
    for (n, p) in plans.keys.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        key(&mut out, p);
    }
    out
}

fn key(out: &mut String, p: &KeyPlan) {
    let _ = writeln!(
        out,
        "{} / {} / {} / {} / {} ({}, guid {})",
        shown(&p.foundation),
        shown(&p.org),
        shown(&p.space),
        shown(&p.service_instance),
        shown(&p.service_key),
        shown(&p.service_offering),
        shown(&p.service_key_guid),
    );
    let expiry = match (&p.expires_at, p.seconds_left) {
        (Some(at), Some(left)) if left > 0 => format!("expires {at} ({} left)", time_left(left)),
        (Some(at), Some(left)) => format!("expires {at} ({})", time_left(left)),
        _ => "does not expire".to_owned(),
    };
    let owners = if p.owners.is_empty() {
        "no owner recorded".to_owned()
    } else {
        let pairs: Vec<String> = (p.owners.iter())
            .map(|(k, v)| format!("{}={}", shown(k), shown(v)))
            .collect();
        format!("owners {}", pairs.join(", "))
    };
    let _ = writeln!(out, "  {expiry}; {owners}");
    match p.status {
        Status::CannotPlan => {
            let reason = p.reason.as_deref().unwrap_or("unknown");
            let _ = writeln!(out, "  CANNOT PLAN: {}", shown(reason));
            return;
        }
        Status::SuccessorExists => {
            if let Some(s) = &p.successor {
                let _ = writeln!(
                    out,
                    "  successor {} exists since {} (expires {}): move the consumers, then delete this key",
                    shown(&s.name),
                    s.created_at.as_deref().unwrap_or("?"),
                    s.expires_at.as_deref().unwrap_or("never"),
                );
            }
        }
        Status::Rotate => {
            if let (Some(params), Some(source)) = (&p.parameters, p.parameters_source) {
                let source = serde_json::to_value(source).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  parameters ({}): {}",
                    source.as_str().unwrap_or("?"),
                    shown(p.parameters_basis.as_deref().unwrap_or_default())
                );
                let _ = writeln!(out, "    {}", serde_json::Value::Object(params.clone()));
            }
        }
    }
    for (i, step) in p.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, shown(&step.title));
        let _ = writeln!(out, "     $ {}", step.cf);
        if let Some(r) = &step.request {
            let _ = writeln!(out, "     {} {}", r.method, r.path);
            if let Some(body) = &r.body {
                let _ = writeln!(out, "     {body}");
            }
        }
        if let Some(note) = &step.note {
            let _ = writeln!(out, "     ({})", shown(note));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_names_are_escaped() {
        assert_eq!(
            shown("a\nb\x1b[31m\u{202e}"),
            "a\\u{a}b\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(shown("plain"), "plain");
    }

    #[test]
    fn no_key_says_so() {
        assert_eq!(
            text(&Plans::default()),
            "no key selected: nothing to rotate\n"
        );
    }
}
