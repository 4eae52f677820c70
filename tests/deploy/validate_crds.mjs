// Validates prometheus-operator objects (ServiceMonitor, PrometheusRule) against validators
// generated from the operator's CRD OpenAPI schemas (npm @kubernetes-models/prometheus-operator,
// pinned in package.json). Reads a JSON array of objects on stdin; prints a JSON array of
// {kind, name, error} with error null when the object is valid. Called by check.py.
import { readFileSync } from "node:fs";
import * as monitoringV1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = objects.map((obj) => {
  const name = obj?.metadata?.name ?? "";
  const Model = obj.apiVersion === "monitoring.coreos.com/v1" ? monitoringV1[obj.kind] : undefined;
  if (typeof Model !== "function") {
    return { kind: obj.kind, name, error: `no validator for ${obj.apiVersion} ${obj.kind}` };
  }
  try {
    new Model(obj).validate();
    return { kind: obj.kind, name, error: null };
  } catch (e) {
    return { kind: obj.kind, name, error: String(e.message ?? e) };
  }
});
process.stdout.write(JSON.stringify(results));
