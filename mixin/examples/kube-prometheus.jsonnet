// Importing the cf-service-key-exporter mixin into a kube-prometheus-style jsonnet setup, with
// the exporter's job selected and two thresholds overridden. With jsonnet-bundler:
//   jb install github.com/cf-service-key-exporter/cf-service-key-exporter/mixin@v0.1.0
// (vendor/mixin, or any -J path under which 'mixin/mixin.libsonnet' resolves). Render with
//   jsonnet -J vendor -m manifests kube-prometheus.jsonnet
// tests/alerts/run.sh renders this file and tests the rule that comes out.
local cfske = (import 'mixin/mixin.libsonnet') + {
  _config+:: {
    selector: 'job="cf-service-key-exporter"',
    expectedFoundations: ['eu10', 'us10'],
    thresholds+:: {
      expiryCriticalMaxSeconds: 2 * 86400,  // page two days before expiry, not one
    },
  },
};

{
  // What kube-prometheus' addMixin makes of a mixin: one PrometheusRule with both rule sets,
  // and one ConfigMap per dashboard for Grafana's sidecar.
  'cf-service-key-exporter-prometheusRule': {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'cf-service-key-exporter-rules',
      namespace: 'monitoring',
      labels: { prometheus: 'k8s', role: 'alert-rules' },
    },
    spec: { groups: cfske.prometheusRules.groups + cfske.prometheusAlerts.groups },
  },
  'cf-service-key-exporter-dashboards': {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'grafana-dashboard-cf-service-keys',
      namespace: 'monitoring',
      labels: { grafana_dashboard: '1' },
    },
    data: { [name]: std.manifestJsonEx(cfske.grafanaDashboards[name], '  ') for name in std.objectFields(cfske.grafanaDashboards) },
  },
}
