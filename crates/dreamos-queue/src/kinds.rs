//! Task kinds and the JSON Schema each one's payload must satisfy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// One kind of task: what its payload must look like and who may submit it.
#[derive(Debug, Clone)]
pub struct KindSpec {
    pub name: String,
    pub description: String,
    pub schema: Value,
    /// Only admins may submit it (for example `exec`, which runs programs).
    pub admin_only: bool,
    /// It only reads (a search, an analysis): viewers may submit it, within their scopes.
    pub read_only: bool,
    validator: Arc<jsonschema::Validator>,
}

impl KindSpec {
    /// Compiles `schema`; an invalid schema is a programming or configuration error.
    pub fn new(
        name: &str,
        description: &str,
        schema: Value,
        admin_only: bool,
    ) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("schema of kind `{name}` is invalid: {e}"))?;
        Ok(Self {
            name: name.into(),
            description: description.into(),
            schema,
            admin_only,
            read_only: false,
            validator: Arc::new(validator),
        })
    }

    /// Marks the kind as one that only reads: viewers may submit it.
    pub fn reads_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The schema violations of `payload`, empty when it is valid.
    pub fn problems(&self, payload: &Value) -> Vec<String> {
        self.validator
            .iter_errors(payload)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect()
    }
}

/// The kinds a node accepts.
#[derive(Debug, Clone, Default)]
pub struct KindRegistry {
    kinds: BTreeMap<String, KindSpec>,
}

impl KindRegistry {
    /// The kinds every node runs: `noop` and `exec`.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register(
            KindSpec::new(
                "noop",
                "does nothing and succeeds; for tests and benchmarks",
                json!({ "type": "object" }),
                false,
            )
            .expect("builtin schema"),
        );
        registry.register(
            KindSpec::new(
                "exec",
                "runs a program with arguments (no shell), a timeout, an output cap and an environment allowlist",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["program"],
                    "properties": {
                        "program": { "type": "string", "minLength": 1 },
                        "args": { "type": "array", "items": { "type": "string" } },
                        "env": { "type": "object", "additionalProperties": { "type": "string" } },
                        "cwd": { "type": "string" },
                        "timeout_ms": { "type": "integer", "minimum": 1 },
                        "max_output_bytes": { "type": "integer", "minimum": 0 },
                        "max_memory_bytes": { "type": "integer", "minimum": 1 },
                        "max_cpu_ms": { "type": "integer", "minimum": 1 }
                    }
                }),
                true,
            )
            .expect("builtin schema"),
        );
        registry.register(
            KindSpec::new(
                "fanout",
                "runs its child tasks (on any agents) and succeeds with their results when all have (fan-out / fan-in)",
                json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tasks"],
                    "properties": {
                        "tasks": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "items": {
                                "type": "object",
                                "required": ["kind"],
                                "properties": { "kind": { "type": "string", "minLength": 1 } }
                            }
                        }
                    }
                }),
                false,
            )
            .expect("builtin schema"),
        );
        registry
    }

    pub fn register(&mut self, spec: KindSpec) {
        self.kinds.insert(spec.name.clone(), spec);
    }

    pub fn get(&self, name: &str) -> Option<&KindSpec> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &KindSpec> {
        self.kinds.values()
    }
}
