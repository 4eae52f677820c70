//! Which keys a report (or a rotation plan) is about: `--only-foundation`, `--owner KEY=VALUE`
//! and `--key NAME|GUID`, all of which must hold; and `--expiring-within` for the plan, whose
//! keys are only those within it. Pure.

use crate::cli::{OwnerFilter, ReportArgs};
use crate::config::{Config, MetadataLabel};

use super::Row;

/// Whether the filters keep this key.
pub fn keeps(args: &ReportArgs, row: &Row) -> bool {
    let foundation = args.only_foundation.is_empty()
        || args.only_foundation.iter().any(|f| *f == *row.foundation);
    let labels = &row.key.labels;
    let key = args.keys.is_empty()
        || args
            .keys
            .iter()
            .any(|k| *k == *labels.service_key || *k == *labels.service_key_guid);
    foundation && key && args.owner.iter().all(|o| owned_by(row, o))
}

fn owned_by(row: &Row, owner: &OwnerFilter) -> bool {
    let label = MetadataLabel::sanitise(&owner.key);
    row.key
        .owner_pairs(&row.owner_labels)
        .any(|(l, v)| l == label && v == owner.value)
}

/// Filters that cannot match anything by construction: a foundation that is not configured,
/// an owner key that no foundation reads (`--metadata-labels`).
pub fn check(args: &ReportArgs, config: &Config) -> Result<(), String> {
    let names: Vec<&str> = config.foundations.iter().map(|f| f.name.as_str()).collect();
    if let Some(unknown) = args
        .only_foundation
        .iter()
        .find(|f| !names.contains(&f.as_str()))
    {
        return Err(format!(
            "--only-foundation: no foundation is named {unknown} (configured: {})",
            names.join(", ")
        ));
    }
    for owner in &args.owner {
        let read = config
            .foundations
            .iter()
            .any(|f| f.metadata_labels.iter().any(|m| m.key == owner.key));
        if !read {
            return Err(format!(
                "--owner {}: not one of the --metadata-labels keys, so no key has that owner label",
                owner.key
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ReportOutput;
    use crate::snapshot::test_record;
    use std::sync::Arc;

    fn row(foundation: &str, name: &str, team: Option<&str>) -> Row {
        let mut key = test_record(&format!("guid-{name}"));
        key.labels.service_key = name.into();
        key.owners = Arc::from([team.map(Arc::from)]);
        Row {
            foundation: foundation.into(),
            owner_labels: Arc::from(["label_team".to_owned()]),
            key,
        }
    }

    fn args() -> ReportArgs {
        ReportArgs {
            output: ReportOutput::Table,
            expiring_within: None,
            rotate_plan: true,
            only_foundation: Vec::new(),
            owner: Vec::new(),
            keys: Vec::new(),
        }
    }

    #[test]
    fn every_filter_must_hold() {
        let rows = [
            row("eu10", "a", Some("payments")),
            row("eu10", "b", Some("jobs")),
            row("us10", "c", Some("payments")),
            row("us10", "d", None),
        ];
        let kept = |a: &ReportArgs| -> Vec<String> {
            rows.iter()
                .filter(|r| keeps(a, r))
                .map(|r| r.key.labels.service_key.to_string())
                .collect()
        };
        assert_eq!(kept(&args()), ["a", "b", "c", "d"]);
        let mut a = args();
        a.owner = vec![OwnerFilter::parse("team=payments").unwrap()];
        assert_eq!(kept(&a), ["a", "c"]);
        a.only_foundation = vec!["us10".into()];
        assert_eq!(kept(&a), ["c"]);
        let mut a = args();
        a.keys = vec!["b".into(), "guid-d".into()];
        assert_eq!(kept(&a), ["b", "d"]);
    }
}
