"""What the dev-server holds in memory after many assistant requests, and what it gives back.

    python3 bench/assistant_memory.py BINARY [REQUESTS [WAIT_S [DB]]]

Starts BINARY (a farm-chat-dev-server) with 50 load-test farmers, sends REQUESTS assistant
messages (default 1029) over 8 connections, and prints the process's resident memory (VmRSS)
before, after the tasks finished, and WAIT_S seconds later (default 70; the housekeeping timer
runs every 60 s, finished tasks stay hot 5 minutes), then the server's own gauges of what it
holds (stream backlog events and bytes, hot tasks).
"""
import json, subprocess, sys, time, urllib.request, concurrent.futures as cf
bin_ = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 1029
p = subprocess.Popen([bin_, "--addr", "127.0.0.1:0", "--db", sys.argv[4] if len(sys.argv) > 4 else ":memory:", "--assistant-speed", "fast",
    "--static-dir", "/nonexistent", "--load-users", "50", "--sign-in-per-minute", "100000",
    "--sign-in-per-user-per-minute", "100000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = p.stdout.readline(); base = line.strip().rsplit("http://", 1)[1].rstrip("/")
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def post(path, body, token=None):
    req = urllib.request.Request(f"http://{base}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + token} if token else {})})
    try:
        with urllib.request.urlopen(req) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())
tokens = [post("/api/session", {"userId": f"u-load-{i}"})[1]["token"] for i in range(50)]
# warm up: one request per user
for i in range(50): post("/api/chat/send", {"conversationId": f"c-u-load-{i}-assistant", "text": "14番の牛の健康", "idempotencyKey": f"w{i}"}, tokens[i])
time.sleep(3); r0 = rss()
texts = ["発情予定の牛のリストを作って", "14番の牛の健康", "出荷報告を作って", "cow 14 health"]
def one(k):
    u = k % 50
    while True:
        s, b = post("/api/chat/send", {"conversationId": f"c-u-load-{u}-assistant", "text": texts[k % 4], "idempotencyKey": f"k{k}"}, tokens[u])
        if s == 429: time.sleep(0.3); continue
        return s
with cf.ThreadPoolExecutor(8) as ex: statuses = list(ex.map(one, range(n)))
time.sleep(8); r1 = rss()
time.sleep(int(sys.argv[3]) if len(sys.argv) > 3 else 70); r2 = rss()
print(json.dumps({"requests": n, "created": statuses.count(201), "rss_kb_before": r0, "rss_kb_after": r1, "rss_kb_later": r2, "growth_kb": r1 - r0, "later_growth_kb": r2 - r0}))
m = urllib.request.urlopen(f"http://{base}/metrics").read().decode()
print("\n".join(l for l in m.splitlines() if l.startswith(("farm_chat_backlog", "farm_chat_hot"))))
p.kill()
