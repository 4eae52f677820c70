// Helpers of the mixin and the renderers alerts/generate.sh uses: rule groups as readable YAML
// (each rule's comment above it, `record`/`alert` first, expressions as block scalars), the
// PrometheusRule manifest, the dashboards as JSON.
local units = [['y', 365 * 86400], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
local words = { s: 'second', m: 'minute', h: 'hour', d: 'day', y: 'year' };

local trimNewline(s) = if std.endsWith(s, '\n') then trimNewline(std.substr(s, 0, std.length(s) - 1)) else s;

local render = {
  // A number as PromQL reads it: integers without a decimal point, others as %g.
  num(x):: if std.floor(x) == x then '%d' % x else '%g' % x,

  // Seconds as the largest whole unit: 2592000 -> '30d', 5400 -> '90m'.
  duration(seconds)::
    local fits = [u for u in units if seconds % u[1] == 0 && seconds >= u[1]];
    if seconds == 0 then '0s' else '%d%s' % [seconds / fits[0][1], fits[0][0]],

  // A Prometheus duration of one unit as seconds: '8m' -> 480.
  seconds(d)::
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    n * std.filter(function(u) u[0] == std.substr(d, std.length(d) - 1, 1), units)[0][1],

  // A Prometheus duration of one unit in words: '15m' -> '15 minutes', '1h' -> '1 hour'.
  durationText(d)::
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    local w = words[std.substr(d, std.length(d) - 1, 1)];
    '%d %s%s' % [n, w, if n == 1 then '' else 's'],

  // Every line of s indented by n spaces (the first too unless first=false); no final newline.
  indent(s, n, first=true)::
    local pad = std.repeat(' ', n);
    local lines = std.split(trimNewline(s), '\n');
    std.join('\n', [
      if (i == 0 && !first) || lines[i] == '' then lines[i] else pad + lines[i]
      for i in std.range(0, std.length(lines) - 1)
    ]),

  local plain(v) = std.length(std.findSubstr(' ', v)) == 0 && std.length(v) > 0
                   && std.length([ch for ch in std.stringChars(v) if !std.member('abcdefghijklmnopqrstuvwxyz0123456789_-', ch)]) == 0,
  local quoted(v) = if plain(v) then v else "'" + std.strReplace(v, "'", "''") + "'",
  local map(name, obj, n) =
    if std.length(std.objectFields(obj)) == 0 then ''
    else std.repeat(' ', n) + name + ':\n'
         + std.join('', [std.repeat(' ', n + 2) + k + ': ' + quoted(obj[k]) + '\n' for k in std.objectFields(obj)]),
  local comment(text, n) =
    // wrapped at about 100 columns
    local wordsOf = std.split(text, ' ');
    local lines = std.foldl(function(acc, w)
      if std.length(acc) > 0 && std.length(acc[std.length(acc) - 1]) + 1 + std.length(w) <= 100 - n - 2
      then acc[:std.length(acc) - 1] + [acc[std.length(acc) - 1] + ' ' + w]
      else acc + [w], wordsOf, []);
    std.join('', [std.repeat(' ', n) + '# ' + l + '\n' for l in lines]),
  local rule(r) =
    (if std.objectHasAll(r, 'comment') then comment(r.comment, 6) else '')
    + (if std.objectHas(r, 'record') then '      - record: ' + r.record + '\n' else '      - alert: ' + r.alert + '\n')
    + '        expr: |\n' + render.indent(r.expr, 10) + '\n'
    + (if std.objectHas(r, 'for') then '        for: ' + r['for'] + '\n' else '')
    + (if std.objectHas(r, 'keep_firing_for') then '        keep_firing_for: ' + r.keep_firing_for + '\n' else '')
    + (if std.objectHas(r, 'labels') then map('labels', r.labels, 8) else '')
    + (if std.objectHas(r, 'annotations') then
         // summary, description, runbook_url in that order
         local a = r.annotations;
         local order = [k for k in ['summary', 'description', 'runbook_url'] if std.objectHas(a, k)]
                       + [k for k in std.objectFields(a) if !std.member(['summary', 'description', 'runbook_url'], k)];
         '        annotations:\n' + std.join('', ['          ' + k + ': ' + quoted(a[k]) + '\n' for k in order])
       else ''),
  local group(g) =
    '  - name: ' + g.name + '\n'
    + (if std.objectHas(g, 'interval') then '    interval: ' + g.interval + '\n' else '')
    + '    rules:\n'
    + std.join('\n', [rule(r) for r in g.rules]),

  // Every group of a mixin's prometheusRules and prometheusAlerts (in that order), as the YAML
  // of a Prometheus rule file from its `groups:` line on.
  groupsYaml(mixin)::
    local groups = mixin.prometheusRules.groups + mixin.prometheusAlerts.groups;
    'groups:\n' + std.join('\n', [group(g) for g in groups]),
};
render
