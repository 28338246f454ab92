//! The Helm chart of SPEC §12, tested offline: `helm lint --strict` and `helm template` through
//! the Helm Go SDK (PyPI helm-python-sdk) with every values file of helm/driftwatch/ci/, every
//! rendered object validated strictly for Kubernetes 1.30 (core kinds with kubernetes-validate;
//! ServiceMonitor, PodMonitor and PrometheusRule against the Prometheus Operator CRD schema), the
//! wiring checked (sidecar, probes, Service, volumes, security context), the rendered driftwatch
//! config accepted by `driftwatch check-config`, bad values rejected by values.schema.json (which
//! embeds `driftwatch config-schema`), the chart's rules and dashboard identical to deploy/, and
//! the image of deploy/Dockerfile matching what the chart expects of it.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use driftwatch::config::ConfigFile;
use serde_json::{Value, json};
use support::k8s::{k8s_tools, read, repo, run_ok, system_tool, yaml};

const CHART: &str = "helm/driftwatch";
/// Kubernetes version the manifests are validated for (native sidecars need >= 1.29).
const KUBE_VERSION: &str = "1.30.0";
const SCHEMA_UPDATE_VAR: &str = "DRIFTWATCH_UPDATE_CHART_SCHEMA";

/// One values case: a name and the values files layered over the chart's values.yaml.
struct Case {
    name: &'static str,
    files: Vec<PathBuf>,
}

fn cases() -> Vec<Case> {
    let ci = |file: &str| vec![repo(&format!("{CHART}/ci/{file}"))];
    vec![
        Case {
            name: "defaults",
            files: vec![],
        },
        Case {
            name: "native sidecar",
            files: ci("native-sidecar-values.yaml"),
        },
        Case {
            name: "monitoring off",
            files: ci("monitoring-off-values.yaml"),
        },
        Case {
            name: "tls on",
            files: ci("tls-values.yaml"),
        },
    ]
}

/// The rendered objects of one case, by kind (several ConfigMaps: a list per kind).
struct Rendered {
    objects: Vec<Value>,
    notes: String,
    /// The rendered YAML, for kubernetes-validate.
    yaml: String,
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "one {kind}: {found:?}");
        found[0]
    }

    fn config_map(&self, suffix: &str) -> &Value {
        self.all("ConfigMap")
            .into_iter()
            .find(|o| o["metadata"]["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("a ConfigMap named *{suffix}"))
    }

    fn pod_spec(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]
    }

    /// The driftwatch container, wherever the chart put it.
    fn driftwatch(&self) -> &Value {
        let spec = self.pod_spec();
        spec["containers"]
            .as_array()
            .into_iter()
            .chain(spec["initContainers"].as_array())
            .flatten()
            .find(|c| c["name"] == "driftwatch")
            .expect("a driftwatch container")
    }

    /// The driftwatch config file the ConfigMap holds.
    fn driftwatch_config(&self) -> String {
        self.config_map("-config")["data"]["config.yaml"]
            .as_str()
            .expect("config.yaml")
            .to_owned()
    }
}

fn render(files: &[PathBuf]) -> Result<Rendered, String> {
    let mut args: Vec<String> = vec![
        "render".into(),
        repo(CHART).display().to_string(),
        "demo".into(),
        "ml".into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let answer = k8s_tools(&args);
    if answer["ok"] != true {
        return Err(format!("{}: {}", answer["error_type"], answer["error"]));
    }
    let manifests = answer["manifests"].as_object().expect("manifests");
    let mut objects = Vec::new();
    let mut text = String::new();
    let mut notes = String::new();
    for (path, manifest) in manifests {
        let manifest = manifest.as_str().unwrap();
        if path.ends_with("NOTES.txt") {
            notes = manifest.to_owned();
            continue;
        }
        for document in manifest.split("\n---") {
            if document
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            objects.push(yaml(document));
            text.push_str("---\n");
            text.push_str(document);
            text.push('\n');
        }
    }
    Ok(Rendered {
        objects,
        notes,
        yaml: text,
    })
}

fn lint(files: &[PathBuf]) -> Value {
    let mut args: Vec<String> = vec!["lint".into(), repo(CHART).display().to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    k8s_tools(&args)
}

fn write_values(dir: &Path, name: &str, values: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(values).unwrap()).unwrap();
    path
}

#[test]
fn every_values_file_lints_renders_and_validates_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = Vec::new();
    for case in cases() {
        let report = lint(&case.files);
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap() >= 2)
            .collect();
        assert!(
            problems.is_empty() && report["errors"].as_array().unwrap().is_empty(),
            "helm lint --strict, {}: {report}",
            case.name
        );
        let rendered = render(&case.files).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let file = dir
            .path()
            .join(format!("{}.yaml", case.name.replace(' ', "-")));
        std::fs::write(&file, &rendered.yaml).unwrap();
        manifests.push((case.name, file, rendered.objects.len()));
    }
    let mut args = vec!["validate".to_owned(), KUBE_VERSION.to_owned()];
    args.extend(
        manifests
            .iter()
            .map(|(_, file, _)| file.display().to_string()),
    );
    let results = k8s_tools(&args);
    let results = results.as_array().unwrap();
    for (name, file, count) in &manifests {
        let file = file.display().to_string();
        let mine: Vec<&Value> = results.iter().filter(|r| r["file"] == file).collect();
        assert_eq!(mine.len(), *count, "{name}: every object validated");
        for result in mine {
            assert!(
                result["errors"].as_array().unwrap().is_empty(),
                "{name}: {} {} is invalid ({}):\n{}",
                result["kind"],
                result["name"],
                result["validator"],
                result["errors"]
            );
            let validator = result["validator"].as_str().unwrap();
            if result["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com")
            {
                assert!(validator.contains("CRD schema, strict"), "{validator}");
            } else {
                assert!(
                    validator.contains("--strict") && validator.contains(KUBE_VERSION),
                    "{validator}"
                );
            }
        }
    }
}

/// The kinds each case renders.
#[test]
fn each_case_renders_the_objects_it_asks_for() {
    let kinds = |rendered: &Rendered| -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for object in &rendered.objects {
            *kinds
                .entry(object["kind"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        kinds
    };
    let expected = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let cases = cases();
    let defaults = render(&cases[0].files).unwrap();
    assert_eq!(
        kinds(&defaults),
        expected(&[
            ("ConfigMap", 2),
            ("Deployment", 1),
            ("PrometheusRule", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
            ("ServiceMonitor", 1),
        ])
    );
    let native = render(&cases[1].files).unwrap();
    assert_eq!(
        kinds(&native),
        expected(&[
            ("ConfigMap", 2),
            ("Deployment", 1),
            ("PodMonitor", 1),
            ("PrometheusRule", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
        ])
    );
    let off = render(&cases[2].files).unwrap();
    assert_eq!(
        kinds(&off),
        expected(&[
            ("ConfigMap", 1),
            ("Deployment", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
        ])
    );
    let tls = render(&cases[3].files).unwrap();
    assert_eq!(
        kinds(&tls),
        expected(&[
            ("ConfigMap", 2),
            ("Deployment", 1),
            ("PodDisruptionBudget", 1),
            ("PrometheusRule", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
            ("ServiceMonitor", 1),
        ])
    );
}

#[test]
fn the_sidecar_is_wired_in_front_of_the_model_server() {
    for case in cases() {
        let rendered = render(&case.files).unwrap();
        let spec = rendered.pod_spec();
        let driftwatch = rendered.driftwatch();
        let native = case.name == "native sidecar";
        // Classic: a second container. Native: an init container that keeps running.
        let containers = spec["containers"].as_array().unwrap();
        if native {
            assert_eq!(containers.len(), 1, "{}", case.name);
            assert_eq!(driftwatch["restartPolicy"], "Always");
            assert_eq!(spec["initContainers"].as_array().unwrap().len(), 1);
        } else {
            assert_eq!(containers.len(), 2, "{}", case.name);
            assert!(driftwatch.get("restartPolicy").is_none());
            assert!(spec.get("initContainers").is_none());
        }
        let model = containers.iter().find(|c| c["name"] == "model").unwrap();
        assert_eq!(model["ports"][0]["containerPort"], 8080);

        // Ports, probes on the admin port.
        let ports: BTreeMap<&str, &Value> = driftwatch["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), &p["containerPort"]))
            .collect();
        assert_eq!(ports["proxy"], 8100);
        assert_eq!(ports["admin"], 8101);
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(driftwatch[probe]["httpGet"]["path"], path, "{probe}");
            assert_eq!(driftwatch[probe]["httpGet"]["port"], "admin", "{probe}");
        }
        // Non-root, read-only root filesystem, nothing extra.
        let security = &driftwatch["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        // Requests sized from the benchmarks; a memory limit, no CPU limit.
        assert_eq!(driftwatch["resources"]["requests"]["cpu"], "100m");
        assert_eq!(driftwatch["resources"]["requests"]["memory"], "96Mi");
        assert_eq!(driftwatch["resources"]["limits"]["memory"], "256Mi");
        assert!(driftwatch["resources"]["limits"].get("cpu").is_none());
        // Writable volumes for records and spools; the config from the ConfigMap.
        let mounts: BTreeMap<&str, &str> = driftwatch["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["mountPath"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(mounts["driftwatch-records"], "/var/log/driftwatch");
        assert_eq!(mounts["driftwatch-spool"], "/var/spool/driftwatch");
        assert_eq!(mounts["driftwatch-config"], "/etc/driftwatch/config");
        let volumes: BTreeMap<&str, &Value> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        assert_eq!(
            volumes["driftwatch-spool"]["emptyDir"]["sizeLimit"], "2Gi",
            "emptyDir by default"
        );
        assert_eq!(
            volumes["driftwatch-config"]["configMap"]["name"],
            rendered.config_map("-config")["metadata"]["name"]
        );
        assert!(
            driftwatch["args"]
                .as_array()
                .unwrap()
                .contains(&json!("--config=/etc/driftwatch/config/config.yaml"))
        );
        // The pods roll when the config changes.
        assert!(
            rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
                ["checksum/config"]
                .is_string()
        );
        // The Service sends traffic to the sidecar, never to the model server. Its target ports
        // are numbers, the sidecar's container ports: Kubernetes resolves a named targetPort
        // against a native sidecar's (init container's) ports only from 1.32.
        let service = rendered.one("Service");
        let service_ports = service["spec"]["ports"].as_array().unwrap();
        assert_eq!(service_ports[0]["name"], "http");
        assert_eq!(service_ports[0]["port"], 80);
        assert_eq!(
            &service_ports[0]["targetPort"], ports["proxy"],
            "{}",
            case.name
        );
        for port in service_ports {
            assert!(
                port["targetPort"].is_u64(),
                "{}: numeric targetPort: {port}",
                case.name
            );
            assert_ne!(
                &port["targetPort"], &model["ports"][0]["containerPort"],
                "{}: the Service bypasses driftwatch",
                case.name
            );
        }
        if let Some(admin) = service_ports.iter().find(|p| p["name"] == "admin") {
            assert_eq!(&admin["targetPort"], ports["admin"], "{}", case.name);
        }
        assert_eq!(
            service["spec"]["selector"],
            rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
        );
        // The config listens where the probes and the Service look, and forwards to the model.
        let config = ConfigFile::parse(&rendered.driftwatch_config())
            .unwrap_or_else(|e| panic!("{}: the rendered config: {e}", case.name));
        assert_eq!(config.listen, "0.0.0.0:8100");
        assert_eq!(config.admin.listen, "0.0.0.0:8101");
        assert_eq!(config.upstream.url, "http://127.0.0.1:8080");
        assert!(
            rendered.notes.contains("demo-driftwatch"),
            "NOTES: {}",
            rendered.notes
        );
        // The NOTES only send people to endpoints the admin port serves.
        for (start, _) in rendered.notes.match_indices("localhost:8101") {
            let path: String = rendered.notes[start + "localhost:8101".len()..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !['?', '\'', '"'].contains(c))
                .collect();
            assert!(
                ADMIN_ENDPOINTS.contains(&path.as_str()),
                "NOTES mention {path:?}, which the admin port does not serve"
            );
        }
    }
}

/// What the admin port serves (src/admin/mod.rs), for the NOTES' commands.
const ADMIN_ENDPOINTS: [&str; 8] = [
    "/metrics",
    "/healthz",
    "/readyz",
    "/api/v1/config",
    "/api/v1/models",
    "/api/v1/drift",
    "/api/v1/performance",
    "/api/v1/diversity",
];

/// The number of a container's named port.
fn container_port<'a>(container: &'a Value, name: &str) -> &'a Value {
    &container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("a container port named {name}: {container}"))["containerPort"]
}

#[test]
fn the_service_targets_the_sidecar_ports_by_number() {
    // Other ports than the defaults, with a native sidecar and the admin port on the Service: the
    // Service's target ports follow driftwatch.ports, as numbers (a named targetPort does not
    // resolve against an init container's ports before Kubernetes 1.32).
    let dir = tempfile::tempdir().unwrap();
    let values = write_values(
        dir.path(),
        "ports.json",
        &json!({
            "sidecar": {"native": true},
            "driftwatch": {"ports": {"proxy": 9100, "admin": 9101}},
            "service": {"exposeAdmin": true},
        }),
    );
    let rendered = render(&[values]).unwrap();
    let driftwatch = rendered.driftwatch();
    assert_eq!(driftwatch["restartPolicy"], "Always", "a native sidecar");
    assert_eq!(container_port(driftwatch, "proxy"), 9100);
    assert_eq!(container_port(driftwatch, "admin"), 9101);
    let ports = rendered.one("Service")["spec"]["ports"].as_array().unwrap();
    let target = |name: &str| -> &Value {
        &ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("Service port {name}: {ports:?}"))["targetPort"]
    };
    assert_eq!(target("http"), container_port(driftwatch, "proxy"));
    assert_eq!(target("admin"), container_port(driftwatch, "admin"));
    let config = ConfigFile::parse(&rendered.driftwatch_config()).unwrap();
    assert_eq!(config.listen, "0.0.0.0:9100");
    assert_eq!(config.admin.listen, "0.0.0.0:9101");
}

#[test]
fn monitoring_objects_scrape_the_admin_port_and_carry_the_labels_asked_for() {
    let cases = cases();
    let defaults = render(&cases[0].files).unwrap();
    let monitor = defaults.one("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        defaults.one("Service")["spec"]["selector"]
    );
    let admin_port = defaults.one("Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .cloned()
        .expect("the Service exposes admin for the ServiceMonitor");
    assert_eq!(
        &admin_port["targetPort"],
        container_port(defaults.driftwatch(), "admin"),
        "the Service's admin port is the sidecar's"
    );
    let dashboard = defaults.config_map("-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");

    let native = render(&cases[1].files).unwrap();
    let pod_monitor = native.one("PodMonitor");
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["port"],
        "admin"
    );
    assert_eq!(
        pod_monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(
        pod_monitor["spec"]["selector"]["matchLabels"],
        native.one("Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert!(
        native.one("Service")["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "admin"),
        "exposeAdmin: false keeps the admin port off the Service"
    );

    let tls = render(&cases[3].files).unwrap();
    let rule = tls.one("PrometheusRule");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let urls: Vec<&str> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["annotations"]["runbook_url"].as_str())
        .collect();
    assert!(!urls.is_empty());
    for url in urls {
        assert!(
            url.starts_with("https://wiki.example.com/ml/driftwatch-runbooks#driftwatch"),
            "runbookBaseUrl applies: {url}"
        );
    }

    // Both monitors at once would scrape everything twice: the chart refuses.
    let dir = tempfile::tempdir().unwrap();
    let both = write_values(
        dir.path(),
        "both.json",
        &json!({"monitoring": {"podMonitor": {"enabled": true}}}),
    );
    let error = render(&[both]).err().expect("both monitors are refused");
    assert!(error.contains("enable one"), "{error}");
}

#[test]
fn tls_and_secret_options_mount_what_the_config_points_at() {
    let rendered = render(&cases()[3].files).unwrap();
    let spec = rendered.pod_spec();
    let driftwatch = rendered.driftwatch();
    let volume = |name: &str| -> Value {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    let mount = |name: &str| -> Value {
        driftwatch["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("mount {name}"))
    };
    assert_eq!(
        volume("driftwatch-tls")["secret"]["secretName"],
        "collector-ca"
    );
    assert_eq!(mount("driftwatch-tls")["mountPath"], "/etc/driftwatch/tls");
    assert_eq!(mount("driftwatch-tls")["readOnly"], true);
    assert_eq!(
        volume("driftwatch-admin-token")["secret"]["secretName"],
        "driftwatch-admin"
    );
    assert_eq!(
        volume("driftwatch-references")["configMap"]["name"],
        "iris-reference"
    );

    let config = yaml(&rendered.driftwatch_config());
    let ca_file = config["sinks"][0]["ca_file"].as_str().unwrap();
    assert!(ca_file.starts_with("/etc/driftwatch/tls/"), "{ca_file}");
    let token_file = config["admin"]["token_file"].as_str().unwrap();
    assert!(
        token_file.starts_with(
            mount("driftwatch-admin-token")["mountPath"]
                .as_str()
                .unwrap()
        ),
        "{token_file}"
    );
    assert!(
        config["models"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("/etc/driftwatch/reference/")
    );
    assert_eq!(rendered.one("Deployment")["spec"]["replicas"], 2);
}

#[test]
fn the_rendered_config_passes_driftwatch_check_config() {
    for case in cases() {
        let rendered = render(&case.files).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The admin token Secret's mount point becomes a directory holding a stand-in token.
        let secrets = dir.path().join("admin");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("token"), "s3cret-token\n").unwrap();
        let config = rendered.driftwatch_config().replace(
            "/var/run/secrets/driftwatch/admin",
            &secrets.display().to_string(),
        );
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, &config).unwrap();
        let output = run_ok(
            Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                .arg("check-config")
                .arg("--config")
                .arg(&file),
        );
        let effective = String::from_utf8_lossy(&output.stdout);
        assert!(
            effective.contains("0.0.0.0:8100") && !effective.contains("s3cret-token"),
            "{}: {effective}",
            case.name
        );
    }
}

#[test]
fn bad_values_are_rejected_by_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "a misspelt driftwatch config key",
            json!({"driftwatch": {"config": {"upstream": {"conect_timeout": "1s"}}}}),
            "conect_timeout",
        ),
        (
            "a driftwatch duration that is not one",
            json!({"driftwatch": {"config": {"shutdown": {"grace": "soon"}}}}),
            "/driftwatch/config/shutdown/grace",
        ),
        (
            "a sink of an unknown type",
            json!({"driftwatch": {"config": {"sinks": [{"type": "s3", "bucket": "b"}]}}}),
            "/driftwatch/config/sinks/0",
        ),
        (
            "a string for sidecar.native",
            json!({"sidecar": {"native": "yes"}}),
            "/sidecar/native",
        ),
        (
            "a port out of range",
            json!({"driftwatch": {"ports": {"proxy": 70000, "admin": 8101}}}),
            "/driftwatch/ports/proxy",
        ),
        (
            "an unknown top-level key",
            json!({"replicas": 3}),
            "replicas",
        ),
        (
            "an empty image repository",
            json!({"driftwatch": {"image": {"repository": ""}}}),
            "/driftwatch/image/repository",
        ),
    ];
    for (what, values, mentions) in bad {
        let file = write_values(dir.path(), "bad.json", &values);
        let report = lint(std::slice::from_ref(&file));
        let errors = report["errors"].to_string();
        assert!(
            errors.contains(mentions),
            "helm lint must reject {what} naming {mentions:?}: {report}"
        );
        let error = render(&[file])
            .err()
            .unwrap_or_else(|| panic!("{what} rendered"));
        assert!(
            error.contains("HelmValuesError") && error.contains(mentions),
            "{what}: {error}"
        );
    }
}

/// values.schema.json with its driftwatch config part replaced by `driftwatch config-schema`:
/// the config root becomes `$defs.DriftwatchConfig`, its definitions join `$defs` beside the
/// chart's own (`Chart*`).
fn schema_with_current_config(current: &Value) -> Value {
    let config = ConfigFile::json_schema();
    let mut defs = serde_json::Map::new();
    for (name, definition) in current["$defs"].as_object().expect("$defs") {
        if name.starts_with("Chart") {
            defs.insert(name.clone(), definition.clone());
        }
    }
    let mut root = config.as_object().unwrap().clone();
    root.remove("$schema");
    let config_defs = root.remove("$defs").unwrap_or_default();
    defs.insert("DriftwatchConfig".into(), Value::Object(root));
    for (name, definition) in config_defs.as_object().into_iter().flatten() {
        assert!(
            !defs.contains_key(name),
            "config definition {name} collides with the chart's"
        );
        defs.insert(name.clone(), definition.clone());
    }
    let mut updated = current.clone();
    updated["$defs"] = Value::Object(defs);
    updated
}

#[test]
fn values_schema_embeds_the_current_config_schema() {
    let path = repo(&format!("{CHART}/values.schema.json"));
    let text = read(&format!("{CHART}/values.schema.json"));
    let current: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    assert_eq!(
        current["properties"]["driftwatch"]["properties"]["config"]["$ref"],
        "#/$defs/DriftwatchConfig"
    );
    let expected = schema_with_current_config(&current);
    let expected_text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    if expected_text != text {
        if std::env::var_os(SCHEMA_UPDATE_VAR).is_some() {
            std::fs::write(&path, &expected_text).unwrap();
        } else {
            panic!(
                "{} does not embed the current `driftwatch config-schema`: regenerate it with\n  \
                 {SCHEMA_UPDATE_VAR}=1 cargo test --test k8s_chart values_schema",
                path.display()
            );
        }
    }
}

#[test]
fn the_chart_ships_the_rules_and_dashboard_of_deploy() {
    for (shipped, copy) in [
        (
            "deploy/prometheus/alerts.yml",
            "helm/driftwatch/files/prometheus/alerts.yml",
        ),
        (
            "deploy/prometheus/recording-rules.yml",
            "helm/driftwatch/files/prometheus/recording-rules.yml",
        ),
        (
            "deploy/grafana/driftwatch-dashboard.json",
            "helm/driftwatch/files/grafana/driftwatch-dashboard.json",
        ),
    ] {
        assert!(
            read(shipped) == read(copy),
            "{copy} differs from {shipped}: copy it (cp {shipped} {copy})"
        );
    }
    let rendered = render(&[]).unwrap();
    let groups = &rendered.one("PrometheusRule")["spec"]["groups"];
    let mut shipped_groups = yaml(&read("deploy/prometheus/recording-rules.yml"))["groups"]
        .as_array()
        .unwrap()
        .clone();
    shipped_groups.extend(
        yaml(&read("deploy/prometheus/alerts.yml"))["groups"]
            .as_array()
            .unwrap()
            .clone(),
    );
    assert_eq!(groups, &Value::Array(shipped_groups));
    // The rendered groups are a rule file promtool accepts.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rendered-rules.json");
    std::fs::write(&rules, json!({"groups": groups}).to_string()).unwrap();
    run_ok(
        Command::new(system_tool("promtool", "prometheus"))
            .args(["check", "rules"])
            .arg(&rules),
    );
    let dashboard: Value = serde_json::from_str(
        rendered.config_map("-dashboard")["data"]["driftwatch-dashboard.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let shipped: Value =
        serde_json::from_str(&read("deploy/grafana/driftwatch-dashboard.json")).unwrap();
    assert_eq!(dashboard, shipped);
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/driftwatch-dashboard.json")).unwrap();
    assert_eq!(dashboard["uid"], "driftwatch");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mut cells = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "duplicate id: {title}"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            grid["x"].as_i64().unwrap(),
            grid["y"].as_i64().unwrap(),
            grid["w"].as_i64().unwrap(),
            grid["h"].as_i64().unwrap(),
        );
        assert!(x + w <= 24, "{title} is wider than the grid");
        for row in y..y + h {
            for column in x..x + w {
                if let Some(other) = cells.insert((row, column), title) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = std::collections::BTreeSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}");
            let expr = target["expr"].as_str().unwrap();
            for variable in expr.split('$').skip(1) {
                let name: String = variable
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || variables.contains(&name.as_str()),
                    "{title}: unknown variable ${name}"
                );
            }
        }
    }
}

#[test]
fn the_image_is_what_the_chart_expects() {
    let commands = k8s_tools(&[
        "dockerfile".to_owned(),
        repo("deploy/Dockerfile").display().to_string(),
    ]);
    let commands = commands.as_array().unwrap();
    let stages: Vec<usize> = commands
        .iter()
        .enumerate()
        .filter(|(_, c)| c["cmd"] == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {commands:?}");
    let last = &commands[*stages.last().unwrap()..];
    let base = last[0]["value"][0].as_str().unwrap();
    assert!(
        base.starts_with("gcr.io/distroless/") && base.ends_with(":nonroot"),
        "runtime base {base}"
    );
    assert!(
        last.iter().all(|c| c["cmd"] != "RUN"),
        "nothing runs in the runtime stage (distroless has no shell)"
    );
    let value = |cmd: &str| -> Vec<String> {
        last.iter()
            .find(|c| c["cmd"] == cmd)
            .unwrap_or_else(|| panic!("{cmd} in the runtime stage"))["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let values: Value = yaml(&read("helm/driftwatch/values.yaml"));
    let user = value("USER");
    let (uid, gid) = user[0].split_once(':').expect("USER uid:gid");
    assert_ne!(uid, "0", "non-root");
    for context in [
        &values["podSecurityContext"],
        &values["driftwatch"]["securityContext"],
    ] {
        assert_eq!(context["runAsUser"].to_string(), uid);
        assert_eq!(context["runAsGroup"].to_string(), gid);
    }
    let exposed = value("EXPOSE");
    for port in ["proxy", "admin"] {
        let port = values["driftwatch"]["ports"][port].to_string();
        assert!(exposed.contains(&port), "EXPOSE {exposed:?} lacks {port}");
    }
    assert_eq!(value("ENTRYPOINT"), ["/usr/local/bin/driftwatch"]);
    assert_eq!(value("CMD"), ["run"]);
    // The build is reproducible from the lock file.
    assert!(
        commands
            .iter()
            .any(|c| c["cmd"] == "RUN" && c["original"].as_str().unwrap().contains("--locked")),
        "cargo build --locked"
    );
}

#[test]
fn the_documented_sidecar_snippet_is_a_valid_deployment() {
    // docs/kubernetes.md shows how to add driftwatch to an existing Deployment; its complete
    // manifests (fenced ```yaml blocks with apiVersion and kind) must be valid as written.
    let docs = read("docs/kubernetes.md");
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = String::new();
    let mut count = 0;
    for block in docs.split("```yaml\n").skip(1) {
        let block = &block[..block.find("```").expect("closed block")];
        if block.contains("\napiVersion:") || block.starts_with("apiVersion:") {
            manifests.push_str("---\n");
            manifests.push_str(block);
            count += block.matches("\nkind:").count() + usize::from(block.starts_with("kind:"));
        }
    }
    assert!(
        count >= 2,
        "docs/kubernetes.md shows the Deployment and its ConfigMap"
    );
    let file = dir.path().join("docs.yaml");
    std::fs::write(&file, &manifests).unwrap();
    let results = k8s_tools(&[
        "validate".to_owned(),
        KUBE_VERSION.to_owned(),
        file.display().to_string(),
    ]);
    let mut kinds = Vec::new();
    for result in results.as_array().unwrap() {
        assert!(
            result["errors"].as_array().unwrap().is_empty(),
            "docs/kubernetes.md: {} {}: {}",
            result["kind"],
            result["name"],
            result["errors"]
        );
        kinds.push(result["kind"].as_str().unwrap().to_owned());
    }
    assert!(kinds.contains(&"Deployment".to_owned()), "{kinds:?}");
    // The config of the snippet is a valid driftwatch config.
    let objects: Vec<Value> = manifests
        .split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(|d| yaml(d.trim_start_matches("---\n")))
        .collect();
    let config = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .and_then(|o| o["data"]["config.yaml"].as_str())
        .expect("the snippet's ConfigMap holds config.yaml");
    ConfigFile::parse(config).expect("the documented config parses");
}
