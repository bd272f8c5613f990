"""Runs wrk with a generated Lua script and reads its report."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}

LUA = """
local tokens, order, etags = {}, {}, {}
local i, run = 0, ""
local method, path, body = %(method)s, %(path)s, %(body)s
init = function(args)
  for line in io.lines(%(tokens)s) do tokens[#tokens + 1] = line end
  if %(etags)s ~= "" then
    for line in io.lines(%(etags)s) do etags[#etags + 1] = line end
  end
  if %(order)s ~= "" then
    for line in io.lines(%(order)s) do order[#order + 1] = tonumber(line) end
  end
  i = math.random(1000000)
  run = tostring(os.time()) .. "-"
end
request = function()
  i = i + 1
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then
    local n = #order > 0 and order[(i %% #order) + 1] or (i %% #tokens) + 1
    headers["Authorization"] = "Bearer " .. tokens[n]
    if #etags > 0 then headers["If-None-Match"] = etags[n] end
  end
  -- "$n" in the body: a value no earlier request of any run has sent, so every request writes
  return wrk.format(method, path, headers, body and (body:gsub("%%$n", run .. i)))
end
"""


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency of {text!r}")
    value, unit = match.groups()
    return float(value) * UNITS[unit]


def run(url: str, *, seconds: int, connections: int, workdir: Path, name: str, method: str = "GET",
        body: dict | None = None, tokens: Path | None = None, order: Path | None = None,
        etags: Path | None = None, cpus: str | None = None) -> dict:
    """`etags`, a file of one ETag per line of `tokens`: each request sends its token's as If-None-Match.
    A `$n` in a string of `body` becomes a value new with every request."""
    script = workdir / f"{name}.lua"
    script.write_text(LUA % {
        "method": json.dumps(method), "path": json.dumps("/" + url.split("/", 3)[3]),
        "body": json.dumps(json.dumps(body)) if body is not None else "nil",
        "tokens": json.dumps(str(tokens or workdir / "no-tokens")), "order": json.dumps(str(order or "")),
        "etags": json.dumps(str(etags or "")),
    })
    (workdir / "no-tokens").touch()
    argv = [shutil.which("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": milliseconds(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1)),
        "p99_ms": milliseconds(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1)),
        "requests": requests,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }
