//! Code workspaces through a real node: registered by an admin, indexed by an `index` task
//! with progress, searched, kept fresh by watch mode, analyzed, and removed.

use std::time::Duration;

use dreamos_node::Node;
use dreamos_node::auth::{self, Role};
use serde_json::{Value, json};

use crate::{config, eventually};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn task_done(&self, token: &str, id: &Value) -> Value {
        let (_, task) = self
            .call(token, reqwest::Method::GET, &format!("/api/v1/tasks/{id}?wait_ms=20000"), None)
            .await;
        assert_eq!(task["state"], "succeeded", "{task}");
        task
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_are_indexed_searched_watched_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("billing.py"),
        "def compute_invoice_total(lines):\n    \"\"\"Sum the invoice lines.\"\"\"\n    return sum(l.amount for l in lines if l.amount)\n",
    )
    .unwrap();
    std::fs::write(
        tree.path().join("util.py"),
        "import billing\n\ndef helper():\n    return billing.compute_invoice_total([])\n",
    )
    .unwrap();
    let node = Node::start(config(dir.path(), 2)).await.unwrap();
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let mut tokens = Vec::new();
    for role in [Role::Operator, Role::Viewer] {
        let issued = auth::issue(role, role.as_str(), 0, None);
        node.store.create_token(issued.record).await.unwrap();
        tokens.push(issued.token);
    }
    let (operator, viewer) = (tokens[0].clone(), tokens[1].clone());
    let c = Client { http: reqwest::Client::new(), base: format!("http://{}", node.addr) };
    use reqwest::Method as M;

    // Only an admin lets the node read a tree; a bad path says why and registers nothing.
    let add = json!({ "name": "shop", "path": tree.path() });
    let (status, _) = c.call(&operator, M::POST, "/api/v1/workspaces", Some(add.clone())).await;
    assert_eq!(status, 403);
    let (status, err) = c
        .call(
            &admin,
            M::POST,
            "/api/v1/workspaces",
            Some(json!({ "name": "x", "path": "/does/not/exist" })),
        )
        .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")), "{err}");
    let (status, added) = c.call(&admin, M::POST, "/api/v1/workspaces", Some(add)).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["task"]["kind"], "index");
    let indexed = c.task_done(&admin, &added["task"]["id"]).await;
    assert_eq!(indexed["result"]["summary"]["added"], 2, "{indexed}");
    let history: Vec<&str> =
        indexed["history"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(history.contains(&"claimed") && history.contains(&"succeeded"));

    // Searched directly, by any reader.
    let (status, found) = c.call(&viewer, M::GET, "/api/v1/search?q=invoice+total", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["symbol"], "compute_invoice_total");
    assert_eq!(
        (found["hits"][0]["workspace"].as_str(), found["hits"][0]["path"].as_str()),
        (Some("shop"), Some("billing.py"))
    );
    let (status, err) = c.call(&viewer, M::GET, "/api/v1/search?q=x&workspace=nope", None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("not_found")));
    let (status, err) = c.call(&viewer, M::GET, "/api/v1/search?q=%2Fa(b%2F", None).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")), "{err}");

    // Kept fresh while the node runs.
    std::fs::write(
        tree.path().join("refunds.py"),
        "def issue_refund_for_order(order):\n    return order\n",
    )
    .unwrap();
    let fresh = eventually(Duration::from_secs(20), || async {
        let (_, r) =
            c.call(&viewer, M::GET, "/api/v1/search?q=sym:issue_refund_for_order", None).await;
        r["hits"][0]["path"] == "refunds.py"
    })
    .await;
    assert!(fresh, "the saved file never became searchable");

    // Search and analyze as tasks (the route Discord takes).
    let submit = |kind: &str, payload: Value| json!({ "kind": kind, "payload": payload });
    let (_, t) = c
        .call(
            &operator,
            M::POST,
            "/api/v1/tasks",
            Some(submit("search", json!({ "query": "refund", "workspace": "shop" }))),
        )
        .await;
    let done = c.task_done(&operator, &t["task"]["id"]).await;
    assert_eq!(done["result"]["hits"][0]["symbol"], "issue_refund_for_order");
    let (_, t) = c
        .call(
            &operator,
            M::POST,
            "/api/v1/tasks",
            Some(submit("analyze", json!({ "workspace": "shop", "what": "metrics" }))),
        )
        .await;
    let done = c.task_done(&operator, &t["task"]["id"]).await;
    let top = &done["result"]["hotspots"][0];
    assert_eq!(
        (top["qualified_name"].as_str(), top["cyclomatic"].as_u64()),
        (Some("compute_invoice_total"), Some(3))
    );
    let (_, t) = c
        .call(
            &operator,
            M::POST,
            "/api/v1/tasks",
            Some(submit(
                "analyze",
                json!({ "workspace": "shop", "what": "dependents", "target": "billing.py" }),
            )),
        )
        .await;
    let done = c.task_done(&operator, &t["task"]["id"]).await;
    assert_eq!(done["result"]["dependents"][0]["path"], "util.py", "{done}");
    let (status, err) = c
        .call(
            &operator,
            M::POST,
            "/api/v1/tasks",
            Some(submit("index", json!({ "workspace": "shop", "extra": 1 }))),
        )
        .await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_payload")));

    // Re-indexing is an operator's; removing an admin's, and it keeps the files.
    let (status, t) = c.call(&operator, M::POST, "/api/v1/workspaces/shop/index", None).await;
    assert_eq!(status, 201, "{t}");
    c.task_done(&operator, &t["task"]["id"]).await;
    let (status, _) = c.call(&operator, M::DELETE, "/api/v1/workspaces/shop", None).await;
    assert_eq!(status, 403);
    let (status, _) = c.call(&admin, M::DELETE, "/api/v1/workspaces/shop", None).await;
    assert_eq!(status, 200);
    let (_, list) = c.call(&viewer, M::GET, "/api/v1/workspaces", None).await;
    assert_eq!(list["workspaces"], json!([]));
    assert!(tree.path().join("billing.py").exists());
    node.shutdown().await.unwrap();
}
