#!/usr/bin/env python3
"""Writes a synthetic /metrics exposition of many service keys, shaped like the exporter's, for
measuring what alerts/rules.yml costs a real Prometheus (tests/alerts/rule-cost.sh).

Every per-key series of the contract, for KEYS keys spread over FOUNDATIONS foundations (20
orgs, 5 spaces each, 10 keys per instance), in proportions a large platform sees:

- 55 % Cloud Integration certificate keys of 365 days, uniformly through their life (about 8 %
  of them in the 30-day warning window, 2 % in the critical one, a few expired);
- 15 % 7-day XSUAA x509 keys, created in the last 5 days (rotated in time), 1 in 20 abandoned
  (half a day left);
- 25 % client secrets without an expiry (`expiry_source="none"`), up to 3 years old;
- 5 % with `cf_service_key_read_error`: a fifth of them never read (`unread`), the rest failing
  after a good reading;
- `cf_service_key_warning_lead_seconds` (60 days) on 2 % of the keys;
- the rate-limit gauges per foundation (60 % of the budget left);
- `cf_service_key_owner_info` on every key, `label_team` on 70 % of them and
  `label_example_com_owner` on 30 %.

Deterministic (seeded), so before/after measurements read the same keys.
Usage: synthetic_exposition.py KEYS FOUNDATIONS NOW_UNIX_SECONDS > metrics
"""

import random
import sys

DAY = 86400


def main(keys, foundations, now):
    rnd = random.Random(14)
    out = sys.stdout
    per_key = {name: [] for name in (
        "cf_service_key_expiry_timestamp_seconds", "cf_service_key_expiry_seconds", "cf_service_key_info",
        "cf_service_key_created_timestamp_seconds", "cf_service_key_valid_from_timestamp_seconds",
        "cf_service_key_read_error", "cf_service_key_owner_info", "cf_service_key_warning_lead_seconds")}
    per_foundation = keys // foundations
    for i in range(keys):
        f = i // per_foundation if i // per_foundation < foundations else foundations - 1
        j = i % per_foundation
        org, space, inst = f"org-{j // 100 % 20:02d}", f"space-{j // 20 % 5}", f"instance-{j // 10:04d}"
        labels = (f'foundation="cf-{f:02d}",org="{org}",space="{space}",service_offering="it-rt",'
                  f'service_plan="integration-flow",service_instance="{inst}",service_key="key-{i:06d}",'
                  f'service_key_guid="{f:08x}-0000-4000-8000-{i:012x}"')
        shape = rnd.random()
        read_error = None
        if shape < 0.55:  # 365-day certificate key, anywhere in its life
            valid_from = now - rnd.uniform(-0.0, 370) * DAY
            expiry, source = valid_from + 365 * DAY, "certificate"
        elif shape < 0.70:  # 7-day x509 key: rotated in time, or abandoned
            age = 6.5 * DAY if rnd.random() < 0.05 else rnd.uniform(0, 5) * DAY
            valid_from = now - age
            expiry, source = valid_from + 7 * DAY, "certificate"
        elif shape < 0.95:  # client secret
            valid_from, expiry, source = None, None, "none"
        else:  # failing: unread, or failing after a reading
            if rnd.random() < 0.2:
                valid_from, expiry, source = None, None, "unread"
            else:
                valid_from = now - rnd.uniform(0, 300) * DAY
                expiry, source = valid_from + 365 * DAY, "certificatedetails.validuntil"
            read_error = rnd.choice(("not_found", "forbidden", "http_5xx", "timeout"))
        created = (valid_from if valid_from is not None else now - rnd.uniform(0, 3 * 365) * DAY)
        per_key["cf_service_key_info"].append(f'cf_service_key_info{{{labels},expiry_source="{source}"}} 1')
        per_key["cf_service_key_created_timestamp_seconds"].append(
            f"cf_service_key_created_timestamp_seconds{{{labels}}} {int(created)}")
        if expiry is not None:
            per_key["cf_service_key_expiry_timestamp_seconds"].append(
                f"cf_service_key_expiry_timestamp_seconds{{{labels}}} {int(expiry)}")
            per_key["cf_service_key_expiry_seconds"].append(f"cf_service_key_expiry_seconds{{{labels}}} {int(expiry - now)}")
            per_key["cf_service_key_valid_from_timestamp_seconds"].append(
                f"cf_service_key_valid_from_timestamp_seconds{{{labels}}} {int(valid_from)}")
        if read_error:
            per_key["cf_service_key_read_error"].append(f'cf_service_key_read_error{{{labels},reason="{read_error}"}} 1')
        owners = ""
        if rnd.random() < 0.7:
            owners += f',label_team="team-{rnd.randrange(150):03d}"'
        if rnd.random() < 0.3:
            owners += f',label_example_com_owner="owner-{rnd.randrange(300):03d}@example.com"'
        per_key["cf_service_key_owner_info"].append(f"cf_service_key_owner_info{{{labels}{owners}}} 1")
        if rnd.random() < 0.02:  # an owner's own lead time (--lead-time-annotation)
            per_key["cf_service_key_warning_lead_seconds"].append(
                f"cf_service_key_warning_lead_seconds{{{labels}}} {60 * DAY}")
    for name, lines in per_key.items():
        out.write(f"# HELP {name} Synthetic, for tests/alerts/rule_cost.py\n# TYPE {name} gauge\n")
        out.write("\n".join(lines) + "\n")
    for name, value in (("cf_service_key_exporter_refresh_success", 1),
                        ("cf_service_key_exporter_last_refresh_success_timestamp_seconds", now),
                        ("cf_service_key_exporter_refresh_duration_seconds", 42),
                        ("cf_service_key_exporter_service_keys", per_foundation),
                        ("cf_service_key_exporter_ratelimit_limit", 2000),
                        ("cf_service_key_exporter_ratelimit_remaining", 1200),
                        ("cf_service_key_exporter_ratelimit_reset_timestamp_seconds", now + 1800)):
        out.write(f"# HELP {name} Synthetic, for tests/alerts/rule_cost.py\n# TYPE {name} gauge\n")
        for f in range(foundations):
            out.write(f'{name}{{foundation="cf-{f:02d}"}} {value}\n')
    out.write("# HELP cf_service_key_exporter_build_info Synthetic, for tests/alerts/rule_cost.py\n"
              "# TYPE cf_service_key_exporter_build_info gauge\n")
    out.write('cf_service_key_exporter_build_info{version="0.1.0"} 1\n')


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
