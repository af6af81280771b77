//! Search pages with their buttons, and autocomplete for agents, workspaces, kinds and tasks.

use super::*;

impl Discord {
    pub(super) async fn search(
        self: &Arc<Self>,
        who: &Principal,
        search: SearchArgs,
        page: usize,
    ) -> Step {
        let key = {
            let mut guard = self.searches.lock().unwrap_or_else(|e| e.into_inner());
            let (map, order) = &mut *guard;
            let key = self.next_search.fetch_add(1, Ordering::Relaxed);
            map.insert(key, search.clone());
            order.push_back(key);
            while order.len() > 1_000 {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
            key
        };
        self.search_page(who, key, search, page).await
    }

    pub(super) async fn search_page(
        self: &Arc<Self>,
        who: &Principal,
        key: u64,
        search: SearchArgs,
        page: usize,
    ) -> Step {
        let mut payload = json!({ "query": search.query, "limit": PAGE, "offset": page * PAGE });
        if let Some(w) = &search.workspace {
            payload["workspace"] = json!(w);
        }
        let task = json!({ "kind": "search", "payload": payload });
        let id = match self.call(who, "POST", "/api/v1/tasks", Some(task)).await {
            Ok(v) => v["task"]["id"].as_i64().unwrap_or_default(),
            Err(e) => return Step::Now(Reply::private(e)),
        };
        let query = search.query.clone();
        self.gather(vec![id], move |results| {
            let task = &results[0];
            if task["state"] != "succeeded" {
                return Reply::private(format!(
                    "The search failed: {}",
                    task["error"]["message"].as_str().unwrap_or("unknown error")
                ));
            }
            let result = &task["result"];
            let mut reply = Reply::card(commands::search_card(&query, result, page));
            if page > 0 {
                reply.buttons.push((format!("search:{key}:{}", page - 1), "Previous".into()));
            }
            if result["more"] == true {
                reply.buttons.push((format!("search:{key}:{}", page + 1), "Next".into()));
            }
            reply
        })
        .await
    }

    pub(super) async fn button(
        self: &Arc<Self>,
        member: &Member,
        custom_id: &str,
    ) -> InteractionResponse {
        let Some(role) = self.role_of(member) else {
            return render::message(&Reply::private("You have no Dream.OS role here."));
        };
        let who = self.principal(member, role);
        let mut parts = custom_id.splitn(3, ':');
        let (Some("search"), Some(key), Some(page)) = (parts.next(), parts.next(), parts.next())
        else {
            return render::message(&Reply::private("This button is not mine."));
        };
        let (Ok(key), Ok(page)) = (key.parse::<u64>(), page.parse::<usize>()) else {
            return render::message(&Reply::private("This button is not mine."));
        };
        let search = self.searches.lock().unwrap_or_else(|e| e.into_inner()).0.get(&key).cloned();
        let Some(search) = search else {
            return render::message(&Reply::private(
                "This search has expired: run `/search` again.",
            ));
        };
        match self.search_page(&who, key, search, page).await {
            Step::Now(reply) if !reply.ephemeral => render::update(&reply),
            Step::Now(reply) => render::message(&reply),
            Step::Later(_) => {
                render::message(&Reply::private("The search is taking long; run `/search` again."))
            }
        }
    }

    pub(super) async fn autocomplete(
        &self,
        member: &Member,
        inv: &Invocation,
    ) -> InteractionResponse {
        let choices = match (self.role_of(member), &inv.focused) {
            (Some(role), Some((option, typed))) => {
                self.choices(&self.principal(member, role), option, typed).await
            }
            _ => Vec::new(),
        };
        InteractionResponse {
            kind: InteractionResponseType::ApplicationCommandAutocompleteResult,
            data: Some(InteractionResponseData { choices: Some(choices), ..Default::default() }),
        }
    }

    pub(super) async fn choices(
        &self,
        who: &Principal,
        option: &str,
        typed: &str,
    ) -> Vec<CommandOptionChoice> {
        let (path, list, field) = match option {
            "agent" => ("/api/v1/agents", "agents", "name"),
            "workspace" => ("/api/v1/workspaces", "workspaces", "name"),
            "kind" => ("/api/v1/kinds", "kinds", "name"),
            "id" => ("/api/v1/tasks?limit=100", "tasks", "id"),
            _ => return Vec::new(),
        };
        let Ok(v) = self.call(who, "GET", path, None).await else { return Vec::new() };
        let typed = typed.to_lowercase();
        v[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let value = &item[field];
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                if !text.to_lowercase().contains(&typed) {
                    return None;
                }
                let value = match value.as_i64() {
                    Some(n) => CommandOptionChoiceValue::Integer(n),
                    None => CommandOptionChoiceValue::String(text.clone()),
                };
                let name = match item["kind"].as_str() {
                    Some(kind) if field == "id" => {
                        format!("#{text} {kind} ({})", item["state"].as_str().unwrap_or(""))
                    }
                    _ => text,
                };
                Some(CommandOptionChoice {
                    name: render::clip(&name, 100),
                    name_localizations: None,
                    value,
                })
            })
            .take(25)
            .collect()
    }
}
