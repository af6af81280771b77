#!/usr/bin/env python3
"""A Dream.OS remote agent in plain Python (standard library only), speaking protocol v1
over HTTP: it registers, claims work, reports progress, completes tasks with their fencing
token, and answers messages. It stops when a message says "bye".

usage: py_agent.py SERVER_URL AGENT_TOKEN
"""
import json
import sys
import urllib.error
import urllib.request

SERVER, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(SERVER + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code}: {e.read().decode()}")


reg = call("POST", "/agent/v1/register", {
    "protocol": 1,
    "capabilities": [{"name": "noop"}, {"name": "python", "version": "3"}],
    "labels": {"lang": "python"},
    "slots": 1,
})
me = reg["agent"]["name"]
print(f"registered as {me}", flush=True)

while True:
    call("POST", "/agent/v1/heartbeat", {"running": []})
    for task in call("POST", "/agent/v1/claim", {"max": 1, "wait_ms": 200})["tasks"]:
        tid, fence = task["id"], task["fence"]
        call("POST", f"/agent/v1/tasks/{tid}/progress", {"fence": fence, "percent": 50, "message": "halfway"})
        call("POST", "/agent/v1/heartbeat", {"running": [{"task_id": tid, "fence": fence}]})
        result = {"by": "python", "agent": me, "echo": task["payload"]}
        call("POST", f"/agent/v1/tasks/{tid}/complete", {"fence": fence, "result": result})
    inbox = call("GET", "/agent/v1/messages?max=10")["messages"]
    stop = False
    for m in inbox:
        text = m["body"].get("text", "") if isinstance(m["body"], dict) else ""
        if m.get("correlation_id"):
            call("POST", "/agent/v1/messages", {
                "to": m["sender"],
                "correlation_id": m["correlation_id"],
                "reply_to": m["id"],
                "body": {"text": f"{text} from python"},
            })
        stop = stop or text == "bye"
    if inbox:
        call("POST", "/agent/v1/messages/ack", {"ids": [m["id"] for m in inbox]})
    if stop:
        print("bye", flush=True)
        break
