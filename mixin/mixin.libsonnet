// Monitoring mixin of cf-service-key-exporter: recording rules, alerts and the Grafana dashboard,
// generated from the one `_config` below.
//
//   local mixin = (import 'mixin.libsonnet') + {
//     _config+:: { thresholds+:: { expiryCriticalMaxSeconds: 2 * 86400 } },
//   };
//   mixin.prometheusRules   // { groups: [...] }: the recording rules
//   mixin.prometheusAlerts  // { groups: [...] }: the alerts
//   mixin.grafanaDashboards // { 'cf-service-keys.json': {...} }
//
// alerts/generate.sh renders alerts/rules.yml, deploy/kubernetes/prometheus-rule.yaml and
// dashboards/cf-service-keys.json from it; README.md ("The monitoring mixin") shows an import
// into a kube-prometheus-style setup. Every threshold is a literal number in the expressions,
// taken from `_config` (one place each): no rule reads a threshold through `scalar()`, so a
// second copy of a recorded series (a federating Prometheus, rules loaded twice) cannot turn a
// comparison into NaN.
//
// Design (docs/runbook.md, "One alert per key: replicas and rollouts", says it for operators):
//
// - Identity is the key, not the scrape target: the per-key series the alerts need are first
//   recorded as `cf_service_key:*` with the scrape labels aggregated away, and every key alert
//   reads only those; two replicas give one alert per key, and a new pod continues the same series.
// - Only keys near their expiry get per-key records (`*:near`): those whose warning window opens
//   within thresholds.nearMarginSeconds (from the longest default window or the owner's lead),
//   plus the failing ones. Every other key costs one comparison per evaluation; the dashboard
//   reads the whole inventory from the exporter's series at query time.
// - Only usable replicas count (cf_service_key_exporter:replica_usable, per foundation and
//   target): the replicas whose last refresh succeeded recently; or, when no replica of the
//   foundation is in that state, all of them (they keep serving their last data, and
//   CfServiceKeyExporterRefreshFailing tells). A stuck replica beside a healthy twin stops
//   counting at once, so a key deleted meanwhile stops alerting; CfServiceKeyExporterReplicaFailing
//   names the replica.
// - Carried keys (cf_service_key:carried) keep their last recorded values: each per-key rule
//   reads its own previous value for them only. A key is carried while every usable replica
//   lists it as unread (a cold pod after a rollout, whose rate-limit budget needs hours to read
//   the details again), and every key of a foundation that no replica reports a completed
//   refresh of, for `bridgeSeconds` after the last one was reported (the scrape or two of a
//   rollout in which the old pod is gone and the new one not scraped or refreshed yet). So a
//   rollout neither resolves an alert nor restarts its `for:`. As soon as a replica reports a
//   completed refresh, only what it reports counts: a key deleted meanwhile ends at once.
// - Foundations expected: the configured list plus every foundation seen (remembered in a
//   per-foundation recorded series), until it is listed in `retiredFoundations`.
// - Cost: per-key rules are evaluated every `intervals.keys` (8 minutes: the data changes at
//   most every --refresh-interval, 5 minutes by default, and a key's windows are hours to days
//   long), read each raw per-key metric at most once or twice, read no range of raw per-key
//   samples, and record only near or failing keys. The per-key records and the key alerts are
//   one group, evaluated in order at one instant, so the alerts read the records of the same
//   evaluation; what reads a record later (a rule's own previous value, the dashboard) reads
//   it with last_over_time over `recordsWindow`, as the interval is over the 5-minute lookback.
//   docs/runbook.md, "What the rules cost", has the measurements.
local render = import 'lib/render.libsonnet';

{
  _config+:: {
    version: import 'version.libsonnet',
    // Every alert's runbook_url is runbookBase + '#' + the alert's anchor. The default is
    // docs/runbook.md of this version's release tag; `alerts/generate.sh --runbook-base URL`
    // writes mixin/runbook-base.libsonnet to point at your own copy.
    local override = import 'runbook-base.libsonnet',
    runbookBase: if override != null then override
    else 'https://github.com/cf-service-key-exporter/cf-service-key-exporter/blob/v%s/docs/runbook.md' % self.version,

    // Label matchers that select the exporter's series, e.g. 'job="cf-service-key-exporter"'
    // when another job exports metrics of the same names. Empty: every series of these names.
    selector: '',
    // Labels Prometheus or its service discovery adds to every scraped series: aggregated away
    // from everything per key.
    scrapeLabels: ['instance', 'pod', 'job', 'namespace', 'service', 'endpoint', 'container'],
    // The labels that identify one scrape target (one replica).
    targetLabels: ['instance', 'job'],

    // Foundations that must be reported, besides every foundation ever seen: a listed one that
    // was never seen alerts too (a shard that never came up).
    expectedFoundations: [],
    // Foundations removed on purpose: CfServiceKeyExporterFoundationMissing stops for them.
    retiredFoundations: [],

    // Thresholds, each in one place. Seconds unless said otherwise.
    thresholds+:: {
      // Warning when the time left is under min(lifetime x ratio, max), or under the owner's
      // lead (cf_service_key_warning_lead_seconds) where the key has one.
      expiryWarningLifetimeRatio: 0.25,
      expiryWarningMaxSeconds: 30 * 86400,
      // Critical (pages) when the time left is under min(lifetime x ratio, max).
      expiryCriticalLifetimeRatio: 0.1,
      expiryCriticalMaxSeconds: 86400,
      // An expired key is critical for this long, then a warning ("left behind: delete it").
      expiredCriticalSeconds: 86400,
      // CfServiceKeyExporterCoverageLow: share (0-1) of a foundation's keys without a reading.
      withoutReadingRatio: 0.05,
      // CfServiceKeyRotationDue: keys without an expiry older than this. 0: off (the alert and
      // its recording rule are not generated).
      rotationMaxAgeSeconds: 0,
      // CfServiceKeyExporterDataStale: no completed refresh for this long. Keep it at 3x the
      // longest --refresh-interval or more.
      staleSeconds: 3600,
      // A replica whose last completed refresh is older than this (or whose last refresh
      // failed) stops counting while another replica of its foundation is fine.
      replicaStaleSeconds: 1800,
      // Per-key records hold only the keys near expiry: those whose warning window opens within
      // this long (from expiryWarningMaxSeconds, or the owner's lead, before the expiry). Only they
      // are carried over a rollout: keep it over the longest time a cold replica may need to
      // read every key again (its rate-limit budget; a warm cache needs none).
      nearMarginSeconds: 7 * 86400,
      // CfServiceKeyExporterRateLimitLow: remaining share (0-1) of the rate-limit budget.
      rateLimitRemainingRatio: 0.1,
    },

    // How long a condition must hold before each alert fires.
    'for'+:: {
      expiringSoonWarning: '1h',
      expiringSoonCritical: '5m',
      expired: '0s',
      unreadable: '1h',
      rotationDue: '1h',
      coverageLow: '30m',
      foundationMissing: '10m',
      replicaFailing: '30m',
      refreshFailing: '15m',
      dataStale: '15m',
      down: '10m',
      absent: '10m',
      rateLimitLow: '30m',
    },
    // For how long after a foundation's last completed refresh was reported the per-key series
    // of a foundation that no replica reports are carried over (a rollout's gap). Keep it over
    // for.foundationMissing plus intervals.keys, so that CfServiceKeyExporterFoundationMissing
    // fires (and mutes the foundation's key alerts in Alertmanager) before they end.
    bridgeSeconds: 1200,

    // Evaluation interval of each group. A key alert fires up to one `keys` interval after its
    // condition starts (plus its `for:`); the per-key rules cost in proportion to 1 / `keys`
    // (docs/runbook.md, "What the rules cost").
    intervals+:: {
      keys: '8m',  // per-key records and alerts (annotations are expanded at every evaluation)
      exporter: '1m',  // exporter health, per foundation and replica
      // How far back a per-key record is read when not as of its own evaluation: a rule's own
      // previous value, the dashboard. Over one `keys` interval (Prometheus 3 leaves a range's
      // start out), under two (a value two evaluations old is not brought back).
      recordsWindow: render.duration(render.seconds(self.keys) * 3 / 2),
    },

    dashboard+:: {
      refresh: '5m',  // no faster than the data changes (--refresh-interval)
      from: 'now-24h',
      to: 'now',
    },
  },

  local c = self._config,
  local t = c.thresholds,
  local num = render.num,
  local m(metric, matchers='') =
    local all = std.filter(function(s) s != '', [c.selector, matchers]);
    if std.length(all) == 0 then metric else metric + '{' + std.join(', ', all) + '}',
  local scrape = std.join(', ', c.scrapeLabels),
  local target = std.join(', ', ['foundation'] + c.targetLabels),
  // A per-key metric of the usable replicas, merged into one series per key.
  // With `keys`, only the keys of that recorded series, filtered first (the cheaper join).
  local merged(metric, keys=null) =
    local only = if keys == null then '' else '\n  and on (foundation, service_key_guid) %s' % keys;
    'max without (%s) (\n  %s%s\n  and on (%s) cf_service_key_exporter:replica_usable\n)' % [scrape, m(metric), only, target],
  // A per-key record as of its last evaluation (its own previous value, read by the rule itself).
  local previous(recorded) = 'last_over_time(%s[%s])' % [recorded, c.intervals.recordsWindow],
  // ... or, for a carried key, the rule's own value of the previous evaluation.
  local carried(recorded) =
    '\nor on (foundation, service_key_guid)\n(%s and on (foundation, service_key_guid) cf_service_key:carried)\n' % previous(recorded),
  local runbook(alert) = c.runbookBase + '#' + std.asciiLower(alert),
  local keyAlert(cond) =
    'cf_service_key:labels:near\n  * on (foundation, service_key_guid) group_left ()\nmax by (foundation, service_key_guid) (\n' + render.indent(cond, 2) + '\n)\n',
  local whereKey = 'foundation=%q, service_key_guid=%q',
  local successorOr(otherwise) =
    '{{ with printf "cf_service_key_successor_info{' + whereKey + '}" $labels.foundation $labels.service_key_guid | query }}{{ with first . }}Successor `{{ .Labels.successor_key }}` exists since `{{ with printf "max(cf_service_key_created_timestamp_seconds{' + whereKey + '})" $labels.foundation .Labels.successor_key_guid | query }}{{ . | first | value | humanizeTimestamp }}{{ else }}an unknown time{{ end }}`: move the consumers, then delete this key.{{ end }}{{ else }}' + otherwise + '{{ end }}',
  local keyName = '{{ $labels.service_key }} ({{ $labels.org }}/{{ $labels.space }}/{{ $labels.service_instance }})',
  local keyText = 'Service key "{{ $labels.service_key }}" of service instance "{{ $labels.service_instance }}" ({{ $labels.service_offering }}, plan {{ $labels.service_plan }}) in org "{{ $labels.org }}", space "{{ $labels.space }}" on foundation {{ $labels.foundation }}',
  // The windows in words, from _config: an annotation runs no query for them (every active
  // alert's annotations are expanded at every evaluation).
  local pct(ratio) = num(ratio * 100) + ' %',
  local warningWindowText = "it opens at the owners' lead time before the expiry where the key has one, else at %s of its lifetime or %s before the expiry, whichever is shorter" % [pct(t.expiryWarningLifetimeRatio), render.durationText(render.duration(t.expiryWarningMaxSeconds))],
  local criticalWindowText = 'it opens at %s of its lifetime or %s before the expiry, whichever is shorter' % [pct(t.expiryCriticalLifetimeRatio), render.durationText(render.duration(t.expiryCriticalMaxSeconds))],
  local lastRefresh = m('cf_service_key_exporter_last_refresh_success_timestamp_seconds'),
  // The replicas whose last refresh succeeded within replicaStaleSeconds: recorded for the
  // per-key rules, and inlined in CfServiceKeyExporterReplicaFailing, which is evaluated more
  // often.
  local freshExpr = '(time() - %s) < %s\nunless on (%s) (%s == 0)' % [lastRefresh, num(t.replicaStaleSeconds), target, m('cf_service_key_exporter_refresh_success')],
  local rotationOn = t.rotationMaxAgeSeconds > 0,
  // The keys any key alert can be about: near expiry, failing, and (when on) never expiring.
  local nearKeySeries = ['cf_service_key:expiry_timestamp_seconds:near', 'cf_service_key:read_error'] + (if rotationOn then ['cf_service_key:created_timestamp_seconds:never_expiring'] else []),
  local nearKeys = std.join(' or ', nearKeySeries),
  // The same keys, value 1 (read_error already is).
  local nearKeysOne = std.join(' or ', [if r == 'cf_service_key:read_error' then r else r + ' * 0 + 1' for r in nearKeySeries]),
  local foundationVector(f) = 'label_replace(vector(1), "foundation", "%s", "", "")' % f,

  // The per-key records, the first rules of the per-key group (cf-service-keys): rules of one
  // group are evaluated in order at one timestamp, so each reads the ones above it, and the
  // alerts read them all, as of the same instant. The replicas that count and the foundations
  // carried over a gap come first: read from another group, they could lag an exporter's
  // disappearance by one evaluation, and the carry would lose the keys for good.
  local keyRecords = [
    {
      comment:: 'The replicas (targets) of each foundation whose last refresh succeeded within %s. Value: the age of that refresh.' % render.duration(t.replicaStaleSeconds),
      record: 'cf_service_key_exporter:replica_fresh',
      expr: freshExpr + '\n',
    },
    {
      comment:: 'The replicas whose per-key series count: the fresh ones, or every replica of a foundation that has no fresh one.',
      record: 'cf_service_key_exporter:replica_usable',
      expr: 'cf_service_key_exporter:replica_fresh\nor\n(%s unless on (foundation) cf_service_key_exporter:replica_fresh)\n' % lastRefresh,
    },
    {
      comment:: 'The foundations whose keys are carried over a gap: a completed refresh was reported within %s, and no replica reports one now. Usually empty.' % render.duration(c.bridgeSeconds),
      record: 'cf_service_key_exporter:bridge_active',
      expr: 'group by (foundation) (\n  max_over_time(%s[%s]) > 0\n)\nunless on (foundation) (%s > 0)\n' % [lastRefresh, render.duration(c.bridgeSeconds), lastRefresh],
    },
    {
      comment:: 'The keys whose last values are carried (see the header), value 1: every key a usable replica lists as unread, and the near keys (from the previous evaluation) of the foundations in cf_service_key_exporter:bridge_active.',
      record: 'cf_service_key:carried',
      expr: |||
        group by (foundation, service_key_guid) (
          %(unread)s
          and on (%(target)s) cf_service_key_exporter:replica_usable
        )
        or on (foundation, service_key_guid)
        group by (foundation, service_key_guid) (
          %(near)s and on (foundation) cf_service_key_exporter:bridge_active
        )
      ||| % { unread: m('cf_service_key_info', 'expiry_source="unread"'), target: target, near: previous('cf_service_key:expiry_timestamp_seconds:near') },
    },
    {
      // Two raw series are matched on the target and the key only (`on (...)`): matching on
      // every label hashes each series' whole label set, several times the cost at 20,000 keys.
      comment:: "The expiry of the keys near it: within %s (the longest default warning window plus nearMarginSeconds), or within the owner's lead plus nearMarginSeconds. Only these keys can be in a window before the next %s; no per-key rule below records any other key (docs/runbook.md, \"What the rules cost\"). A carried key keeps its last value." % [render.duration(t.expiryWarningMaxSeconds + t.nearMarginSeconds), render.duration(t.nearMarginSeconds)],
      record: 'cf_service_key:expiry_timestamp_seconds:near',
      expr: std.rstripChars(|||
        max without (%(scrape)s) (
          (
            %(expiry)s < time() + %(horizon)s
            or on (%(series)s)
            (
              (%(expiry)s - on (%(series)s) group_left () %(lead)s < time() + %(margin)s)
              + on (%(series)s) group_left () %(lead)s
            )
          )
          and on (%(target)s) cf_service_key_exporter:replica_usable
        )
      ||| % { scrape: scrape, target: target, series: target + ', service_key_guid', expiry: m('cf_service_key_expiry_timestamp_seconds'), lead: m('cf_service_key_warning_lead_seconds'), horizon: num(t.expiryWarningMaxSeconds + t.nearMarginSeconds), margin: num(t.nearMarginSeconds) }, '\n')
      + carried('cf_service_key:expiry_timestamp_seconds:near'),
    },
    {
      comment:: 'The failing keys, with the reason.',
      record: 'cf_service_key:read_error',
      expr: merged('cf_service_key_read_error') + '\n',
    },
    {
      comment:: 'One series per key that has a successor (the dashboard and the alert descriptions show it).',
      record: 'cf_service_key:successor_info',
      expr: merged('cf_service_key_successor_info') + '\n',
    },
  ] + (if rotationOn then [
         {
           comment:: 'The creation time of the keys that never expire (expiry_source="none"), the only ones CfServiceKeyRotationDue looks at.',
           record: 'cf_service_key:created_timestamp_seconds:never_expiring',
           expr: merged('cf_service_key_created_timestamp_seconds') + |||

             and on (foundation, service_key_guid) %s
           ||| % m('cf_service_key_info', 'expiry_source="none"'),
         },
       ] else []) + [
    {
      comment:: "The near keys' lifetime (expiry - valid_from) where both are known and it is positive, for both windows.",
      record: 'cf_service_key:lifetime_seconds:near',
      expr: |||
        (
          cf_service_key:expiry_timestamp_seconds:near
          - %s
        ) > 0
      ||| % render.indent(merged('cf_service_key_valid_from_timestamp_seconds', 'cf_service_key:expiry_timestamp_seconds:near'), 2, false),
    },
    {
      comment:: "Seconds before expiry at which a near key's warning window opens: the owner's lead where exported, else min(lifetime x %s, %s), else %s (no lifetime). A carried key keeps its last value." % [num(t.expiryWarningLifetimeRatio), render.duration(t.expiryWarningMaxSeconds), render.duration(t.expiryWarningMaxSeconds)],
      record: 'cf_service_key:expiry_warning_threshold_seconds:near',
      expr: merged('cf_service_key_warning_lead_seconds', 'cf_service_key:expiry_timestamp_seconds:near') + |||

        or on (foundation, service_key_guid)
        clamp_max(
          cf_service_key:lifetime_seconds:near * %(ratio)s,
          %(max)s
        )
        or on (foundation, service_key_guid)
        (%(previous)s and on (foundation, service_key_guid) cf_service_key:carried)
        or on (foundation, service_key_guid)
        (cf_service_key:expiry_timestamp_seconds:near * 0 + %(max)s)
      ||| % { ratio: num(t.expiryWarningLifetimeRatio), max: num(t.expiryWarningMaxSeconds), previous: previous('cf_service_key:expiry_warning_threshold_seconds:near') },
    },
    {
      comment:: "Seconds before expiry at which a near key's critical window opens: min(lifetime x %s, %s), else %s. A carried key keeps its last value." % [num(t.expiryCriticalLifetimeRatio), render.duration(t.expiryCriticalMaxSeconds), render.duration(t.expiryCriticalMaxSeconds)],
      record: 'cf_service_key:expiry_critical_threshold_seconds:near',
      expr: |||
        clamp_max(
          cf_service_key:lifetime_seconds:near * %(ratio)s,
          %(max)s
        )
        or on (foundation, service_key_guid)
        (%(previous)s and on (foundation, service_key_guid) cf_service_key:carried)
        or on (foundation, service_key_guid)
        (cf_service_key:expiry_timestamp_seconds:near * 0 + %(max)s)
      ||| % { ratio: num(t.expiryCriticalLifetimeRatio), max: num(t.expiryCriticalMaxSeconds), previous: previous('cf_service_key:expiry_critical_threshold_seconds:near') },
    },
  ] + [
    {
      comment:: 'For the dashboard\'s "Keys to rotate over time": keys %s, counted per foundation, org, space and plan (so the panel reads a few hundred series over its range, not every key\'s).' % r[1],
      record: r[0],
      expr: |||
        count by (foundation, org, space, service_plan) (
          cf_service_key:expiry_timestamp_seconds:near - time() %s
        )
      ||| % r[2],
    }
    for r in [
      ['cf_service_key:keys_in_warning_window:count', 'in their warning window (expired ones included)', '< cf_service_key:expiry_warning_threshold_seconds:near'],
      ['cf_service_key:keys_in_critical_window:count', 'in their critical window (expired ones included)', '< cf_service_key:expiry_critical_threshold_seconds:near'],
      ['cf_service_key:keys_expired:count', 'expired', '<= 0'],
    ]
  ] + [
    {
      comment:: "Share of a foundation's keys without a valid reading (never read, or failing now) among the keys its usable replicas know; 0 when every key reads.",
      record: 'cf_service_key:without_reading_ratio',
      expr: |||
        (
          count by (foundation) (
            group by (foundation, service_key_guid) (
              (%(unread)s or %(failing)s)
              and on (%(target)s) cf_service_key_exporter:replica_usable
            )
          )
          or on (foundation)
          0 * %(known)s
        )
        / %(known)s
      ||| % { unread: m('cf_service_key_info', 'expiry_source="unread"'), failing: m('cf_service_key_read_error'), target: target, known: 'max by (foundation) (%s and on (%s) cf_service_key_exporter:replica_usable)' % [m('cf_service_key_exporter_service_keys'), target] },
    },
    {
      comment:: 'The labels every key alert carries, value 1: the key labels plus its owner labels (label_*) where cf_service_key_owner_info has them, for the keys near expiry%s and the failing ones.' % (if rotationOn then ', never expiring' else ''),
      record: 'cf_service_key:labels:near',
      expr: std.rstripChars(merged('cf_service_key_owner_info', '(%s)' % nearKeys), '\n') + |||

        or on (foundation, service_key_guid)
        (%(previous)s and on (foundation) cf_service_key_exporter:bridge_active)
        or on (foundation, service_key_guid)
        max without (reason) (%(keys)s)
      ||| % { previous: previous('cf_service_key:labels:near'), keys: nearKeysOne },
    },
  ],

  prometheusRules+:: {
    groups+: [
      {
        name: 'cf-service-key-exporter-records',
        interval: c.intervals.exporter,
        rules: [
          {
            comment:: 'Every foundation seen, with the time it was last reported, remembered over Prometheus restarts of up to a day (its own last value; no per-key series read). Feeds CfServiceKeyExporterFoundationMissing.',
            record: 'cf_service_key_exporter:foundation_last_seen_timestamp_seconds',
            expr: |||
              group by (foundation) (%(last)s) * 0 + time()
              or on (foundation)
              last_over_time(cf_service_key_exporter:foundation_last_seen_timestamp_seconds[1d])
            ||| % { last: m('cf_service_key_exporter_last_refresh_success_timestamp_seconds') },
          },
        ] + [
          {
            comment:: 'A threshold of _config, recorded for the dashboard only (no rule reads it).',
            record: r[0],
            expr: num(r[1]) + '\n',
          }
          for r in [
            ['cf_service_key:expiry_warning_lifetime_ratio', t.expiryWarningLifetimeRatio],
            ['cf_service_key:expiry_warning_max_seconds', t.expiryWarningMaxSeconds],
            ['cf_service_key:expiry_critical_lifetime_ratio', t.expiryCriticalLifetimeRatio],
            ['cf_service_key:expiry_critical_max_seconds', t.expiryCriticalMaxSeconds],
            ['cf_service_key:without_reading_ratio_threshold', t.withoutReadingRatio],
            ['cf_service_key:rotation_max_age_seconds', t.rotationMaxAgeSeconds],
            ['cf_service_key_exporter:stale_threshold_seconds', t.staleSeconds],
          ]
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'cf-service-keys',
        interval: c.intervals.keys,
        rules: keyRecords + [
          {
            comment:: "Time left under the key's warning window, until the expired key turns into a warning of CfServiceKeyExpired. Value: the time left in seconds (negative once expired).",
            alert: 'CfServiceKeyExpiringSoon',
            expr: keyAlert(|||
              (
                (cf_service_key:expiry_timestamp_seconds:near - time())
                  < cf_service_key:expiry_warning_threshold_seconds:near
              ) > -%s
            ||| % num(t.expiredCriticalSeconds)),
            'for': c['for'].expiringSoonWarning,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Service key ' + keyName + ' {{ if gt $value 0.0 }}expires in {{ $value | humanizeDuration }}{{ else }}has expired{{ end }}',
              description: keyText + ' is in its warning window: ' + warningWindowText + '. ' + successorOr('Create a new key, give its credentials to every consumer, then delete the old key.'),
              runbook_url: runbook('CfServiceKeyExpiringSoon'),
            },
          },
          {
            comment:: 'The key breaks within its critical window (it pages). It goes on past the expiry, so nothing resolves at the moment the key breaks (CfServiceKeyExpired joins it then, and Alertmanager inhibits this one), until the expired key turns into a warning of CfServiceKeyExpired.',
            alert: 'CfServiceKeyExpiringSoon',
            expr: keyAlert(|||
              (
                (cf_service_key:expiry_timestamp_seconds:near - time())
                  < cf_service_key:expiry_critical_threshold_seconds:near
              ) > -%s
            ||| % num(t.expiredCriticalSeconds)),
            'for': c['for'].expiringSoonCritical,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Service key ' + keyName + ' {{ if gt $value 0.0 }}expires in {{ $value | humanizeDuration }}{{ else }}has expired{{ end }}',
              description: keyText + ' is in its critical window: ' + criticalWindowText + '. ' + successorOr('Rotate it now: create a new key, give its credentials to every consumer, then delete the old key.'),
              runbook_url: runbook('CfServiceKeyExpiringSoon'),
            },
          },
          {
            comment:: 'Expired less than %s ago. Value: the time since expiry in seconds.' % render.duration(t.expiredCriticalSeconds),
            alert: 'CfServiceKeyExpired',
            expr: keyAlert(|||
              ((time() - cf_service_key:expiry_timestamp_seconds:near) >= 0) < %s
            ||| % num(t.expiredCriticalSeconds)),
            'for': c['for'].expired,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Service key ' + keyName + ' expired {{ $value | humanizeDuration }} ago',
              description: keyText + ' has expired; whatever still uses it fails to authenticate. ' + successorOr('Create a new key, give its credentials to every consumer, then delete the expired key.'),
              runbook_url: runbook('CfServiceKeyExpired'),
            },
          },
          {
            comment:: 'Expired %s ago or more and still listed: left behind.' % render.duration(t.expiredCriticalSeconds),
            alert: 'CfServiceKeyExpired',
            expr: keyAlert(|||
              (time() - cf_service_key:expiry_timestamp_seconds:near) >= %s
            ||| % num(t.expiredCriticalSeconds)),
            'for': c['for'].expired,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Service key ' + keyName + ' expired {{ $value | humanizeDuration }} ago and is left behind',
              description: keyText + ' expired {{ $value | humanizeDuration }} ago and is still listed: left behind, delete it. ' + successorOr('If something still uses it, create a new key and give its credentials to every consumer first.'),
              runbook_url: runbook('CfServiceKeyExpired'),
            },
          },
          {
            comment:: 'The latest attempt to fetch or read the key\'s details failed. The reason is not a label (a key whose failure changes reason stays one alert); the summary names it.',
            alert: 'CfServiceKeyUnreadable',
            expr: keyAlert('cf_service_key:read_error\n'),
            'for': c['for'].unreadable,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Service key ' + keyName + ' cannot be read ({{ range printf "cf_service_key:read_error{' + whereKey + '}" $labels.foundation $labels.service_key_guid | query }}{{ .Labels.reason }}{{ end }})',
              description: 'cf-service-key-exporter has been failing for over an hour to fetch or read the details of service key "{{ $labels.service_key }}" of service instance "{{ $labels.service_instance }}" in org "{{ $labels.org }}", space "{{ $labels.space }}" on foundation {{ $labels.foundation }}. If it was read before, its expiry alerts keep working on that reading; if it never was, its expiry is unknown and nothing alerts before it expires.',
              runbook_url: runbook('CfServiceKeyUnreadable'),
            },
          },
        ] + (if rotationOn then [
               {
                 comment:: 'A key without an expiry older than %s. Value: its age in seconds.' % render.duration(t.rotationMaxAgeSeconds),
                 alert: 'CfServiceKeyRotationDue',
                 expr: keyAlert(|||
                   (time() - cf_service_key:created_timestamp_seconds:never_expiring) > %s
                 ||| % num(t.rotationMaxAgeSeconds)),
                 'for': c['for'].rotationDue,
                      labels: { severity: 'warning' },
                 annotations: {
                   summary: 'Service key ' + keyName + ' is {{ $value | humanizeDuration }} old and due for rotation',
                   description: 'Service key "{{ $labels.service_key }}" of service instance "{{ $labels.service_instance }}" in org "{{ $labels.org }}", space "{{ $labels.space }}" on foundation {{ $labels.foundation }} has no expiry and was created {{ $value | humanizeDuration }} ago, longer than the rotation policy allows. ' + successorOr('Create a new key, give its credentials to every consumer, then delete the old key.'),
                   runbook_url: runbook('CfServiceKeyRotationDue'),
                 },
               },
             ] else []) + [
          {
            comment:: "Many keys of one foundation cannot be read: usually the exporter's user lost a role, or a service broker fails. Value: the share (0-1).",
            alert: 'CfServiceKeyExporterCoverageLow',
            expr: 'cf_service_key:without_reading_ratio > %s\n' % num(t.withoutReadingRatio),
            'for': c['for'].coverageLow,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $value | humanizePercentage }} of the service keys of foundation {{ $labels.foundation }} have no valid reading',
              description: 'For %s, {{ $value | humanizePercentage }} of the service keys on foundation {{ $labels.foundation }} have never been read or fail to be read (cf_service_key_read_error): their expiry alerts rely on old readings or on none.' % render.durationText(c['for'].coverageLow),
              runbook_url: runbook('CfServiceKeyExporterCoverageLow'),
            },
          },
        ],
      },
      {
        name: 'cf-service-key-exporter',
        interval: c.intervals.exporter,
        rules: [
          {
            comment:: 'No exporter at all: never deployed, removed from service discovery, or every target down.',
            alert: 'CfServiceKeyExporterAbsent',
            expr: 'absent(%s)\n' % m('cf_service_key_exporter_build_info'),
            'for': c['for'].absent,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No cf-service-key-exporter metrics in Prometheus',
              description: 'Prometheus has had no cf_service_key_exporter_build_info series for %s: no cf-service-key-exporter target is being scraped successfully. No service key can alert.' % render.durationText(c['for'].absent),
              runbook_url: runbook('CfServiceKeyExporterAbsent'),
            },
          },
          {
            comment:: 'An expected foundation (seen before, or listed in _config.expectedFoundations) is reported by no exporter. Keeps firing until it is back or listed in _config.retiredFoundations.',
            alert: 'CfServiceKeyExporterFoundationMissing',
            expr: |||
              (
                group by (foundation) (cf_service_key_exporter:foundation_last_seen_timestamp_seconds)%(expected)s
              )%(retired)s
              unless on (foundation) %(last)s
            ||| % {
              expected: std.join('', ['\n  or ' + foundationVector(f) for f in c.expectedFoundations]),
              retired: if std.length(c.retiredFoundations) == 0 then ''
              else '\nunless on (foundation) (\n  ' + std.join('\n  or ', [foundationVector(f) for f in c.retiredFoundations]) + '\n)',
              last: m('cf_service_key_exporter_last_refresh_success_timestamp_seconds'),
            },
            'for': c['for'].foundationMissing,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No cf-service-key-exporter reports foundation {{ $labels.foundation }}',
              description: 'Foundation {{ $labels.foundation }} is expected (seen before{{ with printf "cf_service_key_exporter:foundation_last_seen_timestamp_seconds{foundation=%q}" $labels.foundation | query }}, last at {{ . | first | value | humanizeTimestamp }}{{ end }}, or configured) and no cf-service-key-exporter has reported it for ' + render.durationText(c['for'].foundationMissing) + ': its exporter (shard) is gone or no longer configured for it. None of its service keys can alert, not even expired ones. If it was removed on purpose, add it to the mixin\'s retiredFoundations.',
              runbook_url: runbook('CfServiceKeyExporterFoundationMissing'),
            },
          },
          {
            comment:: "One replica's refreshes fail (or its last success is old) while another replica of the same foundation is fine. Its per-key series no longer count. Carries the target's labels.",
            alert: 'CfServiceKeyExporterReplicaFailing',
            expr: |||
              (
                %(success)s == 0
                or on (%(target)s)
                (time() - %(last)s) >= %(stale)s
              )
              and on (foundation) (
                %(fresh)s
              )
            ||| % { success: m('cf_service_key_exporter_refresh_success'), last: m('cf_service_key_exporter_last_refresh_success_timestamp_seconds'), stale: num(t.replicaStaleSeconds), target: target, fresh: render.indent(freshExpr, 2, false) },
            'for': c['for'].replicaFailing,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'cf-service-key-exporter {{ $labels.instance }} fails to refresh foundation {{ $labels.foundation }} while another replica succeeds',
              description: 'For ' + render.durationText(c['for'].replicaFailing) + ', the replica {{ $labels.instance }} (job {{ $labels.job }}{{ with $labels.pod }}, pod {{ . }}{{ end }}) has failed to refresh foundation {{ $labels.foundation }} (or completed no refresh within ' + render.durationText(render.duration(t.replicaStaleSeconds)) + ') while another replica of the foundation succeeds. Its service keys no longer count for the key alerts: the other replica carries them. Read its log, then restart it.',
              runbook_url: runbook('CfServiceKeyExporterReplicaFailing'),
            },
          },
          {
            comment:: 'No exporter could complete a refresh of the foundation lately (every replica failing).',
            alert: 'CfServiceKeyExporterRefreshFailing',
            expr: |||
              max without (%(scrape)s) (
                %(success)s
              ) == 0
            ||| % { scrape: scrape, success: m('cf_service_key_exporter_refresh_success') },
            'for': c['for'].refreshFailing,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'cf-service-key-exporter cannot refresh foundation {{ $labels.foundation }}',
              description: 'The last refresh of foundation {{ $labels.foundation }} failed on every exporter that watches it, for at least %s. Expiry data for its service keys is not being updated; keys created or rotated since the last success are not seen. Check the exporter log for the Cloud Foundry or UAA error.' % render.durationText(c['for'].refreshFailing),
              runbook_url: runbook('CfServiceKeyExporterRefreshFailing'),
            },
          },
          {
            comment:: 'No refresh of the foundation completed lately on any exporter. Value: the age of the freshest data.',
            alert: 'CfServiceKeyExporterDataStale',
            expr: |||
              (
                time()
                - max without (%(scrape)s) (
                    %(last)s > 0
                  )
              ) > %(stale)s
            ||| % { scrape: scrape, last: m('cf_service_key_exporter_last_refresh_success_timestamp_seconds'), stale: num(t.staleSeconds) },
            'for': c['for'].dataStale,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Service key data of foundation {{ $labels.foundation }} is {{ $value | humanizeDuration }} old',
              description: 'No cf-service-key-exporter has completed a refresh of foundation {{ $labels.foundation }} for {{ $value | humanizeDuration }}. Expiry alerts for its keys are based on data that old.',
              runbook_url: runbook('CfServiceKeyExporterDataStale'),
            },
          },
          {
            comment:: 'A target that served the exporter\'s metrics within the last day cannot be scraped. Keeps the target\'s labels.',
            alert: 'CfServiceKeyExporterDown',
            expr: |||
              %(up)s == 0
                and on (job, instance) max_over_time(%(build)s[1d])
            ||| % { up: m('up'), build: m('cf_service_key_exporter_build_info') },
            'for': c['for'].down,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'cf-service-key-exporter {{ $labels.instance }} is down',
              description: 'Prometheus cannot scrape cf-service-key-exporter at {{ $labels.instance }} (job {{ $labels.job }}). Unless another replica reports its foundations, none of their service keys can alert, not even expired ones.',
              runbook_url: runbook('CfServiceKeyExporterDown'),
            },
          },
          {
            comment:: "A foundation's remaining Cloud Foundry rate-limit budget is low (readings whose reset time has passed do not count). Value: the remaining share (0-1).",
            alert: 'CfServiceKeyExporterRateLimitLow',
            expr: |||
              min by (foundation) (
                (
                  %(remaining)s
                  / (%(limit)s > 0)
                )
                and on (%(target)s) (%(reset)s > time())
              ) < %(ratio)s
            ||| % { remaining: m('cf_service_key_exporter_ratelimit_remaining'), limit: m('cf_service_key_exporter_ratelimit_limit'), reset: m('cf_service_key_exporter_ratelimit_reset_timestamp_seconds'), target: target, ratio: num(t.rateLimitRemainingRatio) },
            'for': c['for'].rateLimitLow,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Foundation {{ $labels.foundation }} has {{ $value | humanizePercentage }} of its Cloud Foundry rate-limit budget left',
              description: 'For %s the exporters of foundation {{ $labels.foundation }} have seen under %s of the Cloud Foundry rate limit (X-RateLimit-Remaining / X-RateLimit-Limit) left. Key details are read more slowly (new and rotated keys are seen late), and other clients of the same user are refused (HTTP 429).' % [render.durationText(c['for'].rateLimitLow), num(t.rateLimitRemainingRatio * 100) + ' %'],
              runbook_url: runbook('CfServiceKeyExporterRateLimitLow'),
            },
          },
        ],
      },
    ],
  },

  // The dashboard reads the per-key records as last_over_time(<selector>[12m]), the default
  // recordsWindow written in the source (valid PromQL as it stands); the rendered queries read
  // them over recordsWindow. No other query of the source has a range of exactly that form.
  local dashboardSource = std.strReplace(importstr 'dashboards/cf-service-keys.json', '[12m])', '[%s])' % c.intervals.recordsWindow),

  grafanaDashboards+:: {
    'cf-service-keys.json':
      local source = std.parseJson(dashboardSource);
      source {
        refresh: c.dashboard.refresh,
        time: { from: c.dashboard.from, to: c.dashboard.to },
        links: [
          if std.objectHas(l, 'title') && l.title == 'Runbook' then l { url: c.runbookBase } else l
          for l in std.get(source, 'links', [])
        ],
      },
  },
}
