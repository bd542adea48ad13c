#!/usr/bin/env python3
"""Time from a save of rules/default.yaml to the first request decided by the saved rules.

    scripts/save-to-decision.py [BINARY]     (default: target/release/confirm-proxy)

Runs the proxy on a copy of the shipped rules (ports 47611-47612), then ten times moves the
amount limit across a request's amount, alternately writing the file in place and renaming a
new file over it, and polls every 5 ms until the answer changes. Prints milliseconds per save.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request, urllib.error
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "target/release/confirm-proxy")
root = tempfile.mkdtemp()
rules = os.path.join(root, "rules")
shutil.copytree(os.path.join(repo, "rules"), rules)
path = os.path.join(rules, "default.yaml")
orig = open(path).read()
p = subprocess.Popen([BIN, "serve", "--rules", rules, "--listen", "127.0.0.1:47611", "--admin-listen", "127.0.0.1:47612"],
                     stderr=open(os.path.join(root, "proxy.log"), "w"))
def status():
    body = json.dumps({"imp_uid": "imp_1", "merchant_uid": "order-1", "amount": 2000000}).encode()
    req = urllib.request.Request("http://127.0.0.1:47611/confirm", data=body, headers={"content-type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code
try:
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:47612/readyz", timeout=1); break
        except Exception:
            time.sleep(0.05)
    assert status() == 200
    results = {"in place": [], "rename": []}
    for i in range(10):
        style = "in place" if i % 2 == 0 else "rename"
        want = 409 if status() == 200 else 200
        text = orig.replace("max: 3000000", "max: 1500000") if want == 409 else orig
        t0 = time.monotonic()
        if style == "in place":
            with open(path, "w") as f:
                f.write(text)
        else:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, path)
        deadline = t0 + 10
        while status() != want and time.monotonic() < deadline:
            time.sleep(0.005)
        took = (time.monotonic() - t0) * 1000
        results[style].append(round(took))
        time.sleep(0.5)
    print(json.dumps(results))
finally:
    p.terminate(); p.wait(timeout=10)
    shutil.rmtree(root, ignore_errors=True)
