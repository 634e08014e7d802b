"""A test fixture: a stateful, in-memory fake of the Cloud Foundry APIs the Cloud Foundry adapter
uses (the root document, the UAA token endpoint, and Cloud Controller V3 organizations, spaces,
jobs, users, roles, apps, service instances and routes). Not for any other use.

Run by scripts/cf: python3 cf_fake.py --port PORT --dir DIR --org ORG --admin-user USER, with the
admin's password in CF_FAKE_ADMIN_PASSWORD. Serves HTTPS on 127.0.0.1 only, with a CA and server
certificate made at start (DIR/ca.pem, DIR/server.pem, DIR/server-key.pem). Behaviour and sources:
docs/platforms/cloudfoundry-api.md; the control API for tests (/_fake/...) is described in
scripts/cf.
"""
import argparse
import base64
import binascii
import datetime
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

import fake_tls  # scripts/fake_tls.py, beside this file
from fake_tls import TlsServer

MAX_BODY = 1 << 20          # request bodies above 1 MiB are refused (413)
MAX_THREADS = 64            # connections served at once; more are closed at accept
IDLE_TIMEOUT = 30           # seconds a connection may sit idle (keep-alive) or stall
MAX_DELAY_MS = 120_000      # upper bound of a fault's delay_ms
MAX_FAULTS = 1000
MAX_TOKENS = 10_000
MAX_OBJECTS = 20_000        # per collection (orgs, spaces, roles, users, apps, ...)
MAX_JOBS = 10_000
REFRESH_LIFETIME = 2_592_000
CC_VERSION = "3.228.0"
UAA_VERSION = "77.18.0"
DEFAULT_DOMAIN = "apps.canopy-fake.example"

ORG_ROLES = ["organization_auditor", "organization_manager", "organization_billing_manager", "organization_user"]
SPACE_ROLES = ["space_auditor", "space_manager", "space_developer", "space_supporter"]
ALL_ROLES = ORG_ROLES + SPACE_ROLES

# UAA groups of a plain user and of an admin (UAA's default groups; admin as on a bosh-deployed UAA)
USER_GROUPS = {"openid", "cloud_controller.read", "cloud_controller.write", "password.write", "scim.userids",
               "uaa.user"}
ADMIN_GROUPS = USER_GROUPS | {"cloud_controller.admin", "scim.read", "scim.write"}
# the `cf` client of UAA's defaults (oauth-clients.xml)
CF_CLIENT = {"client_id": "cf", "secret": "", "grant_types": ["implicit", "password", "refresh_token"],
             "scope": ["uaa.user", "cloud_controller.read", "cloud_controller.write", "openid", "password.write",
                       "scim.userids", "cloud_controller.admin", "scim.read", "scim.write"],
             "authorities": ["uaa.none"], "admin": False, "seq": 0}

DEFAULT_CONFIG = {"job_polls": 1, "job_seconds": 5, "token_lifetime": 1199, "default_per_page": 50}
# capi-release defaults (cc.rate_limiter.*); off by default as there
DEFAULT_LIMITS = {"enabled": False, "general_limit": 2000, "unauthenticated_limit": 100,
                  "reset_interval_in_minutes": 60}

READ_GLOBAL_SCOPES = {"cloud_controller.admin", "cloud_controller.admin_read_only", "cloud_controller.global_auditor"}


def now_iso(t=None):
    return datetime.datetime.fromtimestamp(t if t is not None else time.time(), datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A Cloud Controller error: {"errors": [{"code", "title", "detail"}]}."""

    def __init__(self, status, code, title, detail, headers=None, ctype=None):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.ctype = ctype


class OAuthError(Exception):
    """A UAA error: {"error", "error_description"}."""

    def __init__(self, status, error, description, headers=None):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


def unprocessable(detail):
    return ApiError(422, 10008, "CF-UnprocessableEntity", detail)


def bad_query(detail):
    return ApiError(400, 10005, "CF-BadQueryParameter", "The query parameter is invalid: %s" % detail)


def not_found(what):
    return ApiError(404, 10010, "CF-ResourceNotFound", "%s not found" % what)


def not_authorized():
    return ApiError(403, 10003, "CF-NotAuthorized", "You are not authorized to perform the requested action")


def unknown_request(method, path):
    return ApiError(404, 10000, "CF-NotFound", "Unknown request (%s %s is not modelled by the Cloud Foundry fake)"
                    % (method, path[:200]))


def parse_error():
    return ApiError(400, 1001, "CF-MessageParseError", "Request invalid due to parse error: invalid request body")


class Response:
    def __init__(self, status, body=None, headers=None, ctype=None):
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self.ctype = ctype
        self.lost = False


def json_body(body):
    if not body or not body.strip():
        raise parse_error()
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise parse_error()
    if not isinstance(value, dict):
        raise parse_error()
    return value


def split_list(v):
    """A CC list filter: split on ',' after the query string was decoded once, then decode each
    element again (a comma inside a value arrives as %252C)."""
    return [urllib.parse.unquote(x) for x in v.split(",")]


def ruby_list(items):
    return "[" + ", ".join('"%s"' % i for i in items) + "]"


def valid_metadata(md):
    if md is None:
        return {"labels": {}, "annotations": {}}
    if not isinstance(md, dict) or set(md) - {"labels", "annotations"}:
        raise unprocessable("Metadata must be an object with labels and annotations")
    out = {}
    for k in ("labels", "annotations"):
        v = md.get(k) or {}
        if not isinstance(v, dict) or not all(isinstance(a, str) and (b is None or isinstance(b, str))
                                              for a, b in v.items()):
            raise unprocessable("Metadata %s must map strings to strings" % k)
        out[k] = {a: b for a, b in v.items() if b is not None}
    return out


class Fake:
    def __init__(self, base_url, org_name, admin_user, admin_password):
        self.base = base_url
        self.org_name, self.admin_user, self.admin_password = org_name, admin_user, admin_password
        self.org_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-cf-fake-org:" + org_name))
        self.admin_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-cf-fake-admin:" + admin_user))
        self.quota_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-cf-fake-quota"))
        self.lock = threading.RLock()
        self.tokens = {}    # access token -> {"sub", "client_id", "scopes", "expires", "is_user"}
        self.refresh = {}   # refresh token -> {"sub", "client_id", "scopes", "expires"}
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self):
        with self.lock:
            self.seq = 0
            self.config = dict(DEFAULT_CONFIG)
            self.limits = dict(DEFAULT_LIMITS)
            self.windows = {}       # rate-limit key -> [window start, count]
            self.orgs = {}          # guid -> org
            self.spaces = {}        # guid -> space
            self.uaa_users = {}     # id -> {"id", "username", "origin", "password", "admin"}
            self.clients = {"cf": dict(CF_CLIENT)}
            self.users = {}         # CC users: guid -> {"guid", "created", "updated", "metadata"}
            self.roles = {}         # guid -> role
            self.apps, self.service_instances, self.routes = {}, {}, {}
            self.jobs = {}          # guid -> job
            self.faults = []
            self.counts = {"total": 0, "root": 0, "uaa": 0, "cc": 0, "throttled": 0, "lost": 0,
                           "faults_applied": 0, "grants": {}, "routes": {}}
            self.add_org({"name": self.org_name, "guid": self.org_guid})
            self.add_uaa_user({"username": self.admin_user, "origin": "uaa", "password": self.admin_password,
                               "id": self.admin_id, "admin": True})

    def next_seq(self):
        self.seq += 1
        return self.seq

    def stamp(self):
        t = time.time()
        return {"seq": self.next_seq(), "created": t, "updated": t}

    @staticmethod
    def cap(coll, what):
        if len(coll) >= MAX_OBJECTS:
            raise unprocessable("The Cloud Foundry fake holds at most %d %s." % (MAX_OBJECTS, what))

    # ---------------------------------------------------------------- entry

    @staticmethod
    def classify(path):
        if path in ("/", "") or path.rstrip("/") in ("/v3", "/v3/info", "/v2/info"):
            return "root"
        if re.match(r"^/(login|uaa)(/|$)", path):
            return "uaa"
        return "cc"

    def serve(self, method, raw_path, query, headers, body, client_ip):
        path = urllib.parse.unquote(raw_path)
        kind = self.classify(path)
        with self.lock:
            self.counts["total"] += 1
            self.counts[kind] += 1
            key = "%s %s" % (method, re.sub(r"/[0-9a-fA-F-]{36}(?=/|$)", "/:guid", path.rstrip("/") or "/")[:120])
            if len(self.counts["routes"]) < 500 or key in self.counts["routes"]:
                self.counts["routes"][key] = self.counts["routes"].get(key, 0) + 1
            fault = self.take_fault(method, raw_path, query, body)
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000.0)
        try:
            if fault and fault.get("status"):
                raise self.fault_error(kind, fault)
            if kind == "uaa":
                resp = self.uaa(method, path, headers, body)
            elif kind == "root":
                resp = self.root(method, path)
            else:
                with self.lock:
                    resp = self.cc(method, path, query, headers, body, client_ip)
        except (ApiError, OAuthError) as e:
            resp = self.error_response(e)
        if resp.status == 429:
            with self.lock:
                self.counts["throttled"] += 1
        if fault and fault.get("lost"):
            resp.lost = True
            with self.lock:
                self.counts["lost"] += 1
        return resp

    @staticmethod
    def error_response(e):
        if isinstance(e, OAuthError):
            return Response(e.status, {"error": e.error, "error_description": e.description}, e.headers,
                            ctype="application/json;charset=UTF-8")
        return Response(e.status, {"errors": [{"detail": e.detail, "title": e.title, "code": e.code}]},
                        e.headers, ctype=e.ctype)

    def fault_error(self, kind, f):
        st = f["status"]
        hdrs = {}
        if f.get("retry_after") is not None:
            hdrs["Retry-After"] = str(f["retry_after"])
        if kind == "uaa":
            err = f.get("title") or {429: "too_many_requests", 500: "server_error",
                                     503: "temporarily_unavailable"}[st]
            return OAuthError(st, err, f.get("detail") or "Injected fault (%d) from the Cloud Foundry fake." % st,
                              hdrs)
        if st == 429:
            reset = int(time.time()) + (f.get("retry_after") or 1)
            hdrs.update({"X-RateLimit-Limit": str(self.limits["general_limit"]), "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(reset)})
            return ApiError(429, f.get("code") or 10013, f.get("title") or "CF-RateLimitExceeded",
                            f.get("detail") or "Rate Limit Exceeded", hdrs, ctype="text/plain; charset=utf-8")
        if st == 500:
            return ApiError(500, f.get("code") or 10001, f.get("title") or "UnknownError",
                            f.get("detail") or "An unknown error occurred.", hdrs)
        return ApiError(503, f.get("code") or 10015, f.get("title") or "CF-ServiceUnavailable",
                        f.get("detail") or "Injected fault (503) from the Cloud Foundry fake.", hdrs)

    # ---------------------------------------------------------------- faults

    def add_faults(self, items):
        added = []
        for f in items:
            if not isinstance(f, dict):
                raise unprocessable("each fault must be a JSON object")
            unknown = set(f) - {"path_contains", "body_contains", "method", "status", "retry_after", "lost",
                                "delay_ms", "times", "code", "title", "detail"}
            if unknown:
                raise unprocessable("unknown fault fields: %s" % ", ".join(sorted(unknown))[:200])
            pc = f.get("path_contains", "")
            if not isinstance(pc, str) or len(pc) > 1000:
                raise unprocessable("path_contains must be a string")
            bc = f.get("body_contains")
            if bc is not None and (not isinstance(bc, str) or not bc or len(bc) > 1000):
                raise unprocessable("body_contains must be a string of 1..1000 characters")
            method = f.get("method")
            if method is not None and (not isinstance(method, str) or not method.isalpha() or len(method) > 10):
                raise unprocessable("method must be an HTTP method name")
            status = f.get("status")
            if status is not None and status not in (429, 500, 503):
                raise unprocessable("status must be 429, 500 or 503")
            ra = f.get("retry_after")
            if ra is not None and (type(ra) is not int or not 0 <= ra <= 3600):
                raise unprocessable("retry_after must be an integer 0..3600")
            if ra is not None and status is None:
                raise unprocessable("retry_after needs a status")
            if status == 429 and ra is None:
                ra = 1  # CC's rate limiter always sends Retry-After
            lost = f.get("lost", False)
            if not isinstance(lost, bool):
                raise unprocessable("lost must be a boolean")
            if lost and status is not None:
                raise unprocessable("a fault is either lost or has a status, not both")
            delay = f.get("delay_ms", 0)
            if type(delay) is not int or not 0 <= delay <= MAX_DELAY_MS:
                raise unprocessable("delay_ms must be an integer 0..%d" % MAX_DELAY_MS)
            times = f.get("times", 1)
            if type(times) is not int or not 1 <= times <= 10000:
                raise unprocessable("times must be an integer 1..10000")
            if not status and not lost and not delay:
                raise unprocessable("a fault needs a status, lost or delay_ms")
            if f.get("code") is not None and type(f["code"]) is not int:
                raise unprocessable("code must be an integer")
            for k in ("title", "detail"):
                if f.get(k) is not None and (not isinstance(f[k], str) or len(f[k]) > 2000):
                    raise unprocessable("%s must be a string" % k)
            added.append({"path_contains": pc, "body_contains": bc,
                          "method": method.upper() if method else None, "status": status,
                          "retry_after": ra, "lost": lost, "delay_ms": delay, "times": times,
                          "code": f.get("code"), "title": f.get("title"), "detail": f.get("detail")})
        with self.lock:
            if len(self.faults) + len(added) > MAX_FAULTS:
                raise unprocessable("at most %d faults may be queued" % MAX_FAULTS)
            self.faults.extend(added)
            return list(self.faults)

    def take_fault(self, method, raw_path, query, body):
        """The first queued fault this request matches (its method, a part of its path and query, a part
        of its body: a test scopes its faults to its own resources, so that tests running beside it
        against the same fake are not hit), counted down."""
        target = (urllib.parse.unquote(raw_path) + ("?" + urllib.parse.unquote(query) if query else "")).lower()
        for f in self.faults:
            if f["method"] and f["method"] != method:
                continue
            if f["path_contains"].lower() not in target:
                continue
            if f["body_contains"] is not None and f["body_contains"].encode() not in (body or b""):
                continue
            f["times"] -= 1
            if f["times"] <= 0:
                self.faults.remove(f)
            self.counts["faults_applied"] += 1
            return dict(f)
        return None

    # ---------------------------------------------------------------- root documents

    def link(self, path):
        return {"href": self.base + path}

    def root(self, method, path):
        if method != "GET":
            raise unknown_request(method, path)
        p = path.rstrip("/")
        if p == "":
            return Response(200, {"links": {
                "self": {"href": self.base},
                "bits_service": None,
                "cloud_controller_v3": {"href": self.base + "/v3", "meta": {"version": CC_VERSION}},
                "network_policy_v0": None,
                "network_policy_v1": None,
                "login": self.link("/login"),
                "uaa": self.link("/uaa"),
                "credhub": None,
                "routing": None,
                "logging": None,
                "log_cache": None,
                "log_stream": None,
                "app_ssh": None,
            }})
        if p == "/v3":
            return Response(200, {"links": {"self": self.link("/v3"), **{
                n: self.link("/v3/" + n) for n in ("apps", "jobs", "organizations", "roles", "routes",
                                                   "service_instances", "spaces", "users")}}})
        if p == "/v3/info":
            return Response(200, {"build": "", "cli_version": {"minimum": None, "recommended": None},
                                  "custom": {}, "description": "Canopy Cloud Foundry fake",
                                  "name": "canopy-cf-fake", "version": 0, "osbapi_version": "2.15",
                                  "rate_limits": {"enabled": self.limits["enabled"],
                                                  "general_limit": self.limits["general_limit"],
                                                  "reset_interval_in_minutes":
                                                      self.limits["reset_interval_in_minutes"]},
                                  "links": {"self": self.link("/v3/info"), "support": {"href": self.base}}})
        return Response(200, {"name": "", "build": "", "support": "CF API v2 is disabled", "version": 0,
                              "description": "", "authorization_endpoint": self.base + "/login",
                              "token_endpoint": self.base + "/uaa", "min_cli_version": None,
                              "min_recommended_cli_version": None, "app_ssh_endpoint": None,
                              "app_ssh_host_key_fingerprint": None, "app_ssh_oauth_client": None,
                              "doppler_logging_endpoint": None, "api_version": "", "osbapi_version": "2.15"})

    # ---------------------------------------------------------------- UAA

    def uaa(self, method, path, headers, body):
        rest = re.sub(r"^/(login|uaa)", "", path).rstrip("/")
        if rest == "/info" and method == "GET":
            return Response(200, {"app": {"version": UAA_VERSION}, "zone_name": "uaa",
                                  "links": {"uaa": self.base + "/uaa", "login": self.base + "/login"},
                                  "prompts": {"username": ["text", "Email"], "password": ["password", "Password"]}},
                            ctype="application/json;charset=UTF-8")
        if rest != "/oauth/token":
            raise OAuthError(404, "not_found", "%s is not modelled by the Cloud Foundry fake's UAA" % path[:200])
        if method != "POST":
            raise OAuthError(405, "method_not_allowed", "Request method '%s' is not supported" % method[:10])
        try:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(400, "invalid_request", "The request body is not form-encoded.")
        client_id, secret = self.client_auth(headers, form)
        www = {"WWW-Authenticate": 'Basic realm="UAA/client", error="unauthorized", '
                                   'error_description="Bad credentials"'}
        with self.lock:
            client = self.clients.get(client_id)
            if not client or not secrets.compare_digest(client["secret"].encode(), (secret or "").encode()):
                raise OAuthError(401, "unauthorized", "Bad credentials", www)
            grant = form.get("grant_type")
            if not grant:
                raise OAuthError(400, "invalid_request", "Missing grant type")
            g, gk = self.counts["grants"], grant[:40]
            if gk in g or len(g) < 50:
                g[gk] = g.get(gk, 0) + 1
            if grant not in ("password", "client_credentials", "refresh_token"):
                raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type")
            if grant not in client["grant_types"]:
                raise OAuthError(401, "invalid_client", "Unauthorized grant type: %s" % grant)
            requested = form.get("scope", "").split()
            if grant == "password":
                return self.password_grant(client, form, requested)
            if grant == "client_credentials":
                allowed = set(client["authorities"])
                scopes = self.pick_scopes(requested, allowed)
                return self.issue(client_id, client_id, scopes, is_user=False, with_refresh=False)
            return self.refresh_grant(client, form, requested)

    @staticmethod
    def client_auth(headers, form):
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise OAuthError(401, "unauthorized", "Failed to decode basic authentication token")
            cid, sep, sec = raw.partition(":")
            if not sep:
                raise OAuthError(401, "unauthorized", "Invalid basic authentication token")
            return urllib.parse.unquote(cid), urllib.parse.unquote(sec)
        if form.get("client_id"):
            return form["client_id"], form.get("client_secret", "")
        raise OAuthError(401, "unauthorized", "Full authentication is required to access this resource",
                         {"WWW-Authenticate": 'Basic realm="UAA/client", error="unauthorized", '
                                              'error_description="Full authentication is required to access '
                                              'this resource"'})

    @staticmethod
    def pick_scopes(requested, allowed):
        for s in requested:
            if s not in allowed:
                raise OAuthError(400, "invalid_scope", "Invalid scope: %s" % s[:200])
        return set(requested) if requested else set(allowed)

    def password_grant(self, client, form, requested):
        username, password = form.get("username", ""), form.get("password", "")
        origin = "uaa"
        if form.get("login_hint"):
            try:
                hint = json.loads(urllib.parse.unquote(form["login_hint"]))
                origin = hint["origin"]
                if not isinstance(origin, str):
                    raise ValueError
            except (ValueError, KeyError, TypeError, RecursionError):
                raise OAuthError(400, "invalid_request", "login_hint must be URL-encoded JSON with an origin")
        user = self.find_uaa_user(username, origin)
        if not user or user["password"] is None or \
                not secrets.compare_digest(user["password"].encode(), password.encode()):
            raise OAuthError(401, "invalid_client", "Bad credentials")
        groups = ADMIN_GROUPS if user["admin"] else USER_GROUPS
        scopes = self.pick_scopes(requested, set(client["scope"])) & groups
        if not scopes:
            raise OAuthError(400, "invalid_scope", "User does not have any of the requested scopes.")
        return self.issue(user["id"], client["client_id"], scopes, is_user=True, with_refresh=True)

    def refresh_grant(self, client, form, requested):
        rt = form.get("refresh_token", "")
        if not rt:
            raise OAuthError(401, "invalid_token", "Invalid refresh token (empty token)")
        info = self.refresh.get(rt)
        if not info:
            raise OAuthError(401, "invalid_token", "Invalid refresh token.")
        if info["client_id"] != client["client_id"]:
            raise OAuthError(400, "invalid_grant", "Wrong client for this refresh token: %s" % info["client_id"])
        if info["expires"] < time.time():
            raise OAuthError(401, "invalid_token", "Invalid refresh token expired at %s"
                             % time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(info["expires"])))
        if info["sub"] not in self.uaa_users:
            raise OAuthError(401, "invalid_token", "Invalid refresh token.")
        scopes = self.pick_scopes(requested, info["scopes"])
        return self.issue(info["sub"], client["client_id"], scopes, is_user=True, with_refresh=False,
                          refresh_token=rt)

    def issue(self, sub, client_id, scopes, is_user, with_refresh, refresh_token=None):
        lifetime = int(self.config["token_lifetime"])
        token = "cf-fake-at." + secrets.token_urlsafe(32)
        now = time.time()
        for store in (self.tokens, self.refresh):
            if len(store) >= MAX_TOKENS:
                for k in [k for k, v in store.items() if v["expires"] < now]:
                    del store[k]
                while len(store) >= MAX_TOKENS:
                    del store[next(iter(store))]
        self.tokens[token] = {"sub": sub, "client_id": client_id, "scopes": set(scopes), "expires": now + lifetime,
                              "is_user": is_user}
        out = {"access_token": token, "token_type": "bearer", "expires_in": lifetime,
               "scope": " ".join(sorted(scopes)), "jti": uuid.uuid4().hex}
        if with_refresh:
            refresh_token = "cf-fake-rt." + secrets.token_urlsafe(32)
            self.refresh[refresh_token] = {"sub": sub, "client_id": client_id, "scopes": set(scopes),
                                           "expires": now + REFRESH_LIFETIME}
        if refresh_token:
            out["refresh_token"] = refresh_token
        return Response(200, out, {"Cache-Control": "no-store", "Pragma": "no-cache"},
                        ctype="application/json;charset=UTF-8")

    def find_uaa_user(self, username, origin):
        for u in self.uaa_users.values():
            if u["username"].lower() == username.lower() and (origin is None or u["origin"] == origin):
                return u
        return None

    # ---------------------------------------------------------------- CC: entry, auth, limits

    ROUTES = [
        (r"^/v3/organizations$", "orgs"), (r"^/v3/organizations/([^/]+)$", "org"),
        (r"^/v3/spaces$", "spaces"), (r"^/v3/spaces/([^/]+)$", "space"),
        (r"^/v3/jobs/([^/]+)$", "job"),
        (r"^/v3/users$", "users"), (r"^/v3/users/([^/]+)$", "user"),
        (r"^/v3/roles$", "roles"), (r"^/v3/roles/([^/]+)$", "role"),
        (r"^/v3/(apps|service_instances|routes)$", "res_list"),
        (r"^/v3/(apps|service_instances|routes)/([^/]+)$", "res_get"),
    ]

    def cc(self, method, path, query, headers, body, client_ip):
        self.tick()
        p = path.rstrip("/")
        for rx, name in self.ROUTES:
            m = re.match(rx, p)
            if m:
                break
        else:
            raise unknown_request(method, path)   # routing comes before authentication
        caller, why = self.authenticate(headers)
        rl_headers = self.rate_limit(caller, client_ip)
        if caller is None:
            if why == "missing":
                raise ApiError(401, 10002, "CF-NotAuthenticated", "Authentication error")
            raise ApiError(401, 1000, "CF-InvalidAuthToken", "Invalid Auth Token")
        if caller["sub"] not in self.users:
            # CC creates its user record on the first authenticated request
            self.users[caller["sub"]] = dict(self.stamp(), guid=caller["sub"],
                                             metadata={"labels": {}, "annotations": {}})
        scopes = caller["scopes"]
        caller["read_global"] = bool(scopes & READ_GLOBAL_SCOPES)
        caller["admin"] = "cloud_controller.admin" in scopes
        if method == "GET":
            if not (caller["read_global"] or "cloud_controller.read" in scopes):
                raise not_authorized()
        elif not (caller["admin"] or "cloud_controller.write" in scopes):
            raise not_authorized()
        q = {}
        try:
            for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
                q[k] = v
        except ValueError:
            raise bad_query("the query string could not be parsed")
        resp = getattr(self, "cc_" + name)(method, path, q, body, caller, *m.groups())
        for k, v in rl_headers.items():
            resp.headers.setdefault(k, v)
        return resp

    def authenticate(self, headers):
        auth = headers.get("Authorization")
        if not auth:
            return None, "missing"
        scheme, _, tok = auth.partition(" ")
        info = self.tokens.get(tok.strip()) if scheme.lower() == "bearer" else None
        if not info or info["expires"] < time.time():
            return None, "invalid"
        return dict(info), None

    def rate_limit(self, caller, client_ip):
        """X-RateLimit-* headers for a counted request, or a 429 (CC's middleware runs before auth)."""
        lim = self.limits
        if not lim["enabled"]:
            return {}
        if caller is not None and caller["scopes"] & {"cloud_controller.admin", "cloud_controller.admin_read_only"}:
            return {}   # admins are not limited and get no headers
        unauth = caller is None
        key = ("ip:" + client_ip) if unauth else ("user:" + caller["sub"])
        limit = int(lim["unauthenticated_limit"] if unauth else lim["general_limit"])
        interval = max(1, int(float(lim["reset_interval_in_minutes"]) * 60))
        now = time.time()
        offset = zlib.crc32(key.encode()) % interval          # per-user offset of the fixed window
        start = math.floor((now - offset) / interval) * interval + offset
        w = self.windows.get(key)
        if not w or w[0] != start:
            if len(self.windows) >= MAX_TOKENS:
                self.windows.clear()
            w = self.windows[key] = [start, 0]
        w[1] += 1
        reset = int(start + interval)
        remaining = max(0, math.floor(max(0, limit - w[1]) / limit * 10) / 10 * limit) if limit > 0 else 0
        hdrs = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(int(remaining)),
                "X-RateLimit-Reset": str(reset)}
        if w[1] > limit:
            hdrs["Retry-After"] = str(max(1, reset - int(now)))
            if unauth:
                raise ApiError(429, 10014, "CF-IPBasedRateLimitExceeded",
                               "Rate Limit Exceeded: Unauthenticated requests from this IP address have exceeded "
                               "the limit. Please log in.", hdrs, ctype="text/plain; charset=utf-8")
            raise ApiError(429, 10013, "CF-RateLimitExceeded", "Rate Limit Exceeded", hdrs,
                           ctype="text/plain; charset=utf-8")
        return hdrs

    # ---------------------------------------------------------------- CC: visibility and permissions

    def user_roles(self, uid):
        return [r for r in self.roles.values() if r["user"] == uid]

    def readable_org_guids(self, caller):
        if caller["read_global"]:
            return set(self.orgs)
        out = set()
        for r in self.user_roles(caller["sub"]):
            if r["org"]:
                out.add(r["org"])
            elif r["space"] in self.spaces:
                out.add(self.spaces[r["space"]]["org"])
        return out

    def readable_space_guids(self, caller):
        if caller["read_global"]:
            return set(self.spaces)
        out = set()
        managed = set()
        for r in self.user_roles(caller["sub"]):
            if r["space"]:
                out.add(r["space"])
            elif r["type"] == "organization_manager":
                managed.add(r["org"])
        out |= {g for g, s in self.spaces.items() if s["org"] in managed}
        return out

    def has_role(self, uid, type_, org=None, space=None):
        return any(r["user"] == uid and r["type"] == type_ and (org is None or r["org"] == org)
                   and (space is None or r["space"] == space) for r in self.roles.values())

    def can_write_org(self, caller, org_guid):
        if caller["admin"]:
            return True
        if not self.has_role(caller["sub"], "organization_manager", org=org_guid):
            return False
        if self.orgs[org_guid]["suspended"]:
            raise ApiError(403, 10017, "CF-OrgSuspended", "The organization is suspended")
        return True

    def can_update_space(self, caller, space):
        if caller["admin"]:
            return True
        if not (self.has_role(caller["sub"], "organization_manager", org=space["org"])
                or self.has_role(caller["sub"], "space_manager", space=space["guid"])):
            return False
        if self.orgs[space["org"]]["suspended"]:
            raise ApiError(403, 10017, "CF-OrgSuspended", "The organization is suspended")
        return True

    # ---------------------------------------------------------------- CC: lists

    LIST_SPECS = {
        # filters, includes, order_by values, 422 (roles/users) or 400, real params not modelled
        "organizations": (["names", "guids"], [], ["created_at", "updated_at", "name"], False,
                          ["label_selector", "created_ats", "updated_ats", "fields"]),
        "spaces": (["names", "guids", "organization_guids"], ["organization"], ["created_at", "updated_at", "name"],
                   False, ["label_selector", "created_ats", "updated_ats", "fields"]),
        "roles": (["guids", "types", "space_guids", "organization_guids", "user_guids"],
                  ["user", "space", "organization"], ["created_at", "updated_at"], True,
                  ["created_ats", "updated_ats"]),
        "users": (["guids", "usernames", "partial_usernames", "origins"], [], ["created_at", "updated_at"], True,
                  ["label_selector", "created_ats", "updated_ats"]),
        "apps": (["guids", "names", "space_guids", "organization_guids"], [], ["created_at", "updated_at", "name",
                                                                               "state"], False,
                 ["stacks", "lifecycle_type", "include", "label_selector", "created_ats", "updated_ats"]),
        "service_instances": (["guids", "names", "space_guids", "organization_guids", "type"], [],
                              ["created_at", "updated_at", "name"], False,
                              ["service_plan_guids", "service_plan_names", "label_selector", "fields",
                               "created_ats", "updated_ats"]),
        "routes": (["guids", "hosts", "space_guids", "organization_guids"], [], ["created_at", "updated_at"], False,
                   ["app_guids", "domain_guids", "paths", "ports", "include", "label_selector", "created_ats",
                    "updated_ats"]),
    }

    def list_params(self, what, q):
        """Validates a list request's query. Returns (filters {name: [values]}, include list, page, per_page,
        order_by or None)."""
        filters, includes, order_values, is_422, unmodelled = self.LIST_SPECS[what]
        valid = filters + (["include"] if includes else []) + ["page", "per_page", "order_by"]
        errors = []
        extra = [k for k in q if k not in valid and k not in unmodelled]
        if extra:
            errors.append("Unknown query parameter(s): '%s'. Valid parameters are: '%s'"
                          % ("', '".join(extra), "', '".join(valid + unmodelled)))
        skipped = [k for k in q if k in unmodelled]
        if skipped:
            errors.append("'%s' is not modelled by the Cloud Foundry fake" % "', '".join(skipped))
        page, per_page = 1, int(self.config["default_per_page"])
        if "page" in q:
            try:
                page = int(q["page"])
            except ValueError:
                page = 0
            if page < 1:
                errors.append("Page must be a positive integer")
        if "per_page" in q:
            try:
                per_page = int(q["per_page"])
            except ValueError:
                per_page = 0
            if per_page < 1:
                errors.append("Per page must be a positive integer")
            elif per_page > 5000:
                errors.append("Per page must be between 1 and 5000")
        order = q.get("order_by")
        if order is not None and not re.match(r"^[+-]?(%s)$" % "|".join(order_values), order):
            errors.append("Order by can only be: %s" % ", ".join("'%s'" % v for v in order_values))
        inc = []
        if "include" in q:
            inc = split_list(q["include"])
            bad = [i for i in inc if i not in includes]
            if bad:
                errors.append("Invalid included resource: '%s'. Valid included resources are: '%s'"
                              % ("', '".join(bad), "', '".join(includes)))
        f = {k: split_list(q[k]) for k in filters if k in q}
        if what == "users":
            if "origins" in f and "usernames" not in f and "partial_usernames" not in f:
                errors.append("Origins filter cannot be provided without usernames or partial_usernames filter.")
            if "usernames" in f and "partial_usernames" in f:
                errors.append("Usernames filter cannot be provided with both usernames and partial_usernames "
                              "filter.")
        if errors:
            raise unprocessable(", ".join(errors)) if is_422 else bad_query(", ".join(errors))
        return f, inc, page, per_page, order

    def page(self, items, path, q, page, per_page, order, key_fn):
        """A paginated list body; `items` are records, `key_fn` renders one."""
        if order:
            field = order.lstrip("+-")
            items = sorted(items, key=lambda r: (self.sort_value(r, field), r["seq"]), reverse=order.startswith("-"))
        else:
            items = sorted(items, key=lambda r: r["seq"])
        total = len(items)
        pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def href(n):
            params = {k: v for k, v in q.items() if k not in ("page", "per_page")}
            params["page"] = str(n)
            params["per_page"] = str(per_page)
            enc = []
            for k in sorted(params):
                v = params[k]
                if k not in ("page", "per_page", "order_by"):
                    v = ",".join(urllib.parse.quote(x, safe="") for x in split_list(v))
                enc.append("%s=%s" % (urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe="")))
            return {"href": "%s%s?%s" % (self.base, path, "&".join(enc))}

        return {"pagination": {"total_results": total, "total_pages": pages, "first": href(1), "last": href(pages),
                               "next": href(page + 1) if page < pages else None,
                               "previous": href(page - 1) if 1 < page <= pages + 1 else None},
                "resources": [key_fn(r) for r in chunk]}

    @staticmethod
    def sort_value(r, field):
        if field == "created_at":
            return r["created"]
        if field == "updated_at":
            return r["updated"]
        v = r.get(field)
        return v.lower() if isinstance(v, str) else str(v)

    # ---------------------------------------------------------------- CC: organizations

    def org_json(self, o):
        g = o["guid"]
        return {"guid": g, "created_at": now_iso(o["created"]), "updated_at": now_iso(o["updated"]),
                "name": o["name"], "suspended": o["suspended"],
                "relationships": {"quota": {"data": {"guid": self.quota_guid}}},
                "links": {"self": self.link("/v3/organizations/" + g),
                          "domains": self.link("/v3/organizations/%s/domains" % g),
                          "default_domain": self.link("/v3/organizations/%s/domains/default" % g),
                          "quota": self.link("/v3/organization_quotas/" + self.quota_guid)},
                "metadata": o["metadata"]}

    def cc_orgs(self, method, path, q, body, caller):
        if method != "GET":
            raise unknown_request(method, path)
        f, inc, page, per_page, order = self.list_params("organizations", q)
        readable = self.readable_org_guids(caller)
        items = [o for o in self.orgs.values() if o["guid"] in readable]
        if "names" in f:
            names = {n.lower() for n in f["names"]}
            items = [o for o in items if o["name"].lower() in names]
        if "guids" in f:
            items = [o for o in items if o["guid"] in f["guids"]]
        return Response(200, self.page(items, "/v3/organizations", q, page, per_page, order, self.org_json))

    def cc_org(self, method, path, q, body, caller, guid):
        if method != "GET":
            raise unknown_request(method, path)
        if q:
            raise bad_query("Unknown query parameter(s): '%s'. Valid parameters are: ''" % "', '".join(q))
        o = self.orgs.get(guid)
        if not o or guid not in self.readable_org_guids(caller):
            raise not_found("Organization")
        return Response(200, self.org_json(o))

    # ---------------------------------------------------------------- CC: spaces

    def space_json(self, s):
        g = s["guid"]
        return {"guid": g, "created_at": now_iso(s["created"]), "updated_at": now_iso(s["updated"]),
                "name": s["name"], "suspended": s["suspended"],
                "relationships": {"organization": {"data": {"guid": s["org"]}}, "quota": {"data": None}},
                "links": {"self": self.link("/v3/spaces/" + g), "features": self.link("/v3/spaces/%s/features" % g),
                          "organization": self.link("/v3/organizations/" + s["org"]),
                          "apply_manifest": {"href": self.base + "/v3/spaces/%s/actions/apply_manifest" % g,
                                             "method": "POST"}},
                "metadata": s["metadata"]}

    def with_included_orgs(self, body, spaces):
        guids = []
        for s in spaces:
            if s["org"] not in guids:
                guids.append(s["org"])
        body["included"] = {"organizations": [self.org_json(self.orgs[g]) for g in guids if g in self.orgs]}
        return body

    def cc_spaces(self, method, path, q, body, caller):
        if method == "POST":
            return self.create_space(json_body(body), caller)
        if method != "GET":
            raise unknown_request(method, path)
        f, inc, page, per_page, order = self.list_params("spaces", q)
        readable = self.readable_space_guids(caller)
        items = [s for s in self.spaces.values() if s["guid"] in readable]
        if "names" in f:
            names = {n.lower() for n in f["names"]}
            items = [s for s in items if s["name"].lower() in names]
        if "guids" in f:
            items = [s for s in items if s["guid"] in f["guids"]]
        if "organization_guids" in f:
            items = [s for s in items if s["org"] in f["organization_guids"]]
        out = self.page(items, "/v3/spaces", q, page, per_page, order, self.space_json)
        if "organization" in inc:
            self.with_included_orgs(out, [self.spaces[r["guid"]] for r in out["resources"]])
        return Response(200, out)

    def create_space(self, req, caller):
        errors = []
        extra = [k for k in req if k not in ("name", "relationships", "metadata", "suspended")]
        if extra:
            errors.append("Unknown field(s): '%s'" % "', '".join(extra))
        name = req.get("name")
        if name is None:
            errors.append("Name can't be blank")
        elif not isinstance(name, str):
            errors.append("Name must be a string")
        elif not name.strip():
            errors.append("Name can't be blank")
        elif len(name) > 255:
            errors.append("Name is too long (maximum is 255 characters)")
        elif any(ord(c) < 32 or ord(c) == 127 for c in name):
            errors.append("Name must not contain escaped characters")
        if "suspended" in req and not isinstance(req["suspended"], bool):
            errors.append("Suspended must be a boolean")
        rel = req.get("relationships")
        org_guid = None
        if not isinstance(rel, dict):
            errors.append("Relationships 'relationships' is not an object")
        else:
            extra = [k for k in rel if k != "organization"]
            if extra:
                errors.append("Relationships Unknown field(s): '%s'" % "', '".join(extra))
            org = rel.get("organization")
            data = org.get("data") if isinstance(org, dict) else None
            org_guid = data.get("guid") if isinstance(data, dict) else None
            if not isinstance(org_guid, str) or not org_guid:
                errors.append('Relationships Organization must be structured like this: "organization: {"data": '
                              '{"guid": "valid-guid"}}"')
        if errors:
            raise unprocessable(", ".join(errors))
        metadata = valid_metadata(req.get("metadata"))
        o = self.orgs.get(org_guid)
        if not o or org_guid not in self.readable_org_guids(caller):
            raise unprocessable("Invalid organization. Ensure the organization exists and you have access to it.")
        if not self.can_write_org(caller, org_guid):
            raise not_authorized()
        if any(s["org"] == org_guid and s["name"].lower() == name.lower() for s in self.spaces.values()):
            raise unprocessable("Name must be unique per organization")
        self.cap(self.spaces, "spaces")
        s = dict(self.stamp(), guid=str(uuid.uuid4()), name=name, org=org_guid,
                 suspended=req.get("suspended", False), metadata=metadata)
        self.spaces[s["guid"]] = s
        return Response(201, self.space_json(s))

    def cc_space(self, method, path, q, body, caller, guid):
        s = self.spaces.get(guid)
        if not s or guid not in self.readable_space_guids(caller):
            if method in ("GET", "DELETE"):
                raise not_found("Space")
            raise unknown_request(method, path)
        if method == "GET":
            bad = [k for k in q if k != "include"]
            if bad:
                raise bad_query("Unknown query parameter(s): '%s'. Valid parameters are: 'include'"
                                % "', '".join(bad))
            out = self.space_json(s)
            if "include" in q:
                inc = split_list(q["include"])
                if any(i != "organization" for i in inc):
                    raise bad_query("Invalid included resource: '%s'. Valid included resources are: "
                                    "'organization'" % q["include"][:100])
                self.with_included_orgs(out, [s])
            return Response(200, out)
        if method == "DELETE":
            if not self.can_write_org(caller, s["org"]):
                raise not_authorized()
            return self.new_job("space", s["guid"])
        raise unknown_request(method, path)

    # ---------------------------------------------------------------- CC: jobs

    def new_job(self, rtype, rguid):
        if len(self.jobs) >= MAX_JOBS:
            done = sorted((j for j in self.jobs.values() if j["state"] in ("COMPLETE", "FAILED")),
                          key=lambda j: j["seq"])
            for j in done[:max(1, len(done) // 2)]:
                del self.jobs[j["guid"]]
            if len(self.jobs) >= MAX_JOBS:
                raise ApiError(503, 10015, "CF-ServiceUnavailable", "The Cloud Foundry fake holds too many "
                               "unfinished jobs.")
        j = dict(self.stamp(), guid=str(uuid.uuid4()), operation="%s.delete" % rtype, state="PROCESSING",
                 rtype=rtype, rguid=rguid, polls_left=int(self.config["job_polls"]),
                 deadline=time.time() + float(self.config["job_seconds"]), errors=[], warnings=[])
        self.jobs[j["guid"]] = j
        return Response(202, None, {"Location": self.base + "/v3/jobs/" + j["guid"]})

    def tick(self):
        """Runs the jobs whose time is up (a job finishes after job_polls polls or job_seconds)."""
        now = time.time()
        for j in list(self.jobs.values()):
            if j["state"] == "PROCESSING" and j["deadline"] <= now:
                self.run_job(j)

    def run_job(self, j):
        j["updated"] = time.time()
        if j["rtype"] == "role":
            self.roles.pop(j["rguid"], None)
            j["state"] = "COMPLETE"
            return
        s = self.spaces.get(j["rguid"])
        if s is None:
            j["state"] = "COMPLETE"
            return
        busy = [si for si in self.service_instances.values() if si["space"] == s["guid"]
                and si["operation_in_progress"]]
        if busy:
            j["state"] = "FAILED"
            j["errors"] = [{"code": 290008, "title": "CF-SpaceDeletionFailed",
                            "detail": "Deletion of space %s failed because one or more resources within could not "
                                      "be deleted.\n\n%s" % (s["name"], "\n\n".join(
                                          "\tAn operation for service instance %s is in progress." % si["name"]
                                          for si in busy))}]
            return
        g = s["guid"]
        for coll in (self.apps, self.routes):
            for k in [k for k, v in coll.items() if v["space"] == g]:
                del coll[k]
        for k in [k for k, v in self.service_instances.items() if v["space"] == g]:
            del self.service_instances[k]
        for si in self.service_instances.values():
            if g in si["shared_to"]:
                si["shared_to"].remove(g)
        for k in [k for k, v in self.roles.items() if v["space"] == g]:
            del self.roles[k]
        del self.spaces[g]
        j["state"] = "COMPLETE"

    def job_json(self, j):
        links = {"self": self.link("/v3/jobs/" + j["guid"])}
        coll = self.spaces if j["rtype"] == "space" else self.roles
        if j["rguid"] in coll:
            links[j["rtype"]] = self.link("/v3/%ss/%s" % (j["rtype"], j["rguid"]))
        return {"guid": j["guid"], "created_at": now_iso(j["created"]), "updated_at": now_iso(j["updated"]),
                "operation": j["operation"], "state": j["state"], "links": links, "errors": j["errors"],
                "warnings": j["warnings"]}

    def cc_job(self, method, path, q, body, caller, guid):
        if method != "GET":
            raise unknown_request(method, path)
        j = self.jobs.get(guid)
        if not j:
            raise not_found("Job")
        if j["state"] == "PROCESSING":
            if j["polls_left"] > 0:
                j["polls_left"] -= 1
            else:
                self.run_job(j)
        return Response(200, self.job_json(j))

    # ---------------------------------------------------------------- CC: users

    def user_json(self, u):
        uaa = self.uaa_users.get(u["guid"])
        name = uaa["username"] if uaa else None
        return {"guid": u["guid"], "created_at": now_iso(u["created"]), "updated_at": now_iso(u["updated"]),
                "username": name, "presentation_name": name or u["guid"], "origin": uaa["origin"] if uaa else None,
                "metadata": u["metadata"], "links": {"self": self.link("/v3/users/" + u["guid"])}}

    def readable_user_guids(self, caller):
        if caller["read_global"]:
            return set(self.users)
        orgs = self.readable_org_guids(caller)
        out = {caller["sub"]}
        for r in self.roles.values():
            org = r["org"] or (self.spaces[r["space"]]["org"] if r["space"] in self.spaces else None)
            if org in orgs:
                out.add(r["user"])
        return out

    def cc_users(self, method, path, q, body, caller):
        if method == "POST":
            return self.create_user(json_body(body), caller)
        if method != "GET":
            raise unknown_request(method, path)
        f, inc, page, per_page, order = self.list_params("users", q)
        readable = self.readable_user_guids(caller)
        items = [u for u in self.users.values() if u["guid"] in readable]
        if "guids" in f:
            items = [u for u in items if u["guid"] in f["guids"]]
        if "usernames" in f or "partial_usernames" in f:
            # resolved in UAA (username [+ origin] -> id), then intersected with CC's users
            names = {n.lower() for n in f.get("usernames", [])}
            parts = [p.lower() for p in f.get("partial_usernames", [])]
            origins = set(f["origins"]) if "origins" in f else None
            ids = {u["id"] for u in self.uaa_users.values()
                   if (u["username"].lower() in names or any(p in u["username"].lower() for p in parts))
                   and (origins is None or u["origin"] in origins)}
            items = [u for u in items if u["guid"] in ids]
        return Response(200, self.page(items, "/v3/users", q, page, per_page, order, self.user_json))

    def create_user(self, req, caller):
        if not caller["admin"]:
            raise not_authorized()
        errors = []
        extra = [k for k in req if k not in ("guid", "username", "origin", "metadata")]
        if extra:
            errors.append("Unknown field(s): '%s'" % "', '".join(extra))
        guid, username, origin = req.get("guid"), req.get("username"), req.get("origin")
        if guid is not None and (not isinstance(guid, str) or not 1 <= len(guid) <= 200):
            errors.append("Guid must be a string" if not isinstance(guid, str)
                          else "Guid must be between 1 and 200 characters")
        for k, v in (("Username", username), ("Origin", origin)):
            if v is not None and not isinstance(v, str):
                errors.append("%s must be a string" % k)
        if guid is not None:
            if username is not None:
                errors.append("Username cannot be provided with 'guid'")
            if origin is not None:
                errors.append("Origin cannot be provided with 'guid'")
        elif username is not None or origin is not None:
            if username is None:
                errors.append("Origin can only be provided together with 'username'")
            if origin is None:
                errors.append("Username can only be provided together with 'origin'")
            if origin == "uaa":
                errors.append("Origin cannot be 'uaa' when creating a user by username")
        else:
            errors.append("Guid or 'username' and 'origin' must be provided")
        if errors:
            raise unprocessable(", ".join(errors))
        metadata = valid_metadata(req.get("metadata"))
        if guid is None:
            existing = self.find_uaa_user(username, origin)
            if existing is None:
                # CC asks UAA to create a shadow user (no password)
                existing = self.add_uaa_user({"username": username, "origin": origin})
            if existing["id"] in self.users:
                raise unprocessable("User with username '%s' and origin '%s' already exists." % (username, origin))
            guid = existing["id"]
        elif guid in self.users:
            raise unprocessable("User with guid '%s' already exists." % guid)
        self.cap(self.users, "users")
        u = self.users[guid] = dict(self.stamp(), guid=guid, metadata=metadata)
        return Response(201, self.user_json(u))

    def cc_user(self, method, path, q, body, caller, guid):
        if method != "GET":
            raise unknown_request(method, path)
        u = self.users.get(guid)
        if not u or not (caller["read_global"] or guid == caller["sub"]):
            raise not_found("User")
        return Response(200, self.user_json(u))

    # ---------------------------------------------------------------- CC: roles

    def role_json(self, r):
        rel = {"user": {"data": {"guid": r["user"]}},
               "organization": {"data": {"guid": r["org"]} if r["org"] else None},
               "space": {"data": {"guid": r["space"]} if r["space"] else None}}
        links = {"self": self.link("/v3/roles/" + r["guid"]), "user": self.link("/v3/users/" + r["user"])}
        if r["space"]:
            links["space"] = self.link("/v3/spaces/" + r["space"])
        else:
            links["organization"] = self.link("/v3/organizations/" + r["org"])
        return {"guid": r["guid"], "created_at": now_iso(r["created"]), "updated_at": now_iso(r["updated"]),
                "type": r["type"], "relationships": rel, "links": links}

    def readable_roles(self, caller):
        if caller["read_global"]:
            return list(self.roles.values())
        orgs, spaces = self.readable_org_guids(caller), self.readable_space_guids(caller)
        return [r for r in self.roles.values() if (r["space"] in spaces) or (r["org"] in orgs)]

    def include_for_roles(self, body, roles, inc):
        included = {}
        if "user" in inc:
            seen = []
            for r in roles:
                if r["user"] not in seen and r["user"] in self.users:
                    seen.append(r["user"])
            included["users"] = [self.user_json(self.users[g]) for g in seen]
        if "space" in inc:
            seen = []
            for r in roles:
                if r["space"] and r["space"] not in seen and r["space"] in self.spaces:
                    seen.append(r["space"])
            included["spaces"] = [self.space_json(self.spaces[g]) for g in seen]
        if "organization" in inc:
            seen = []
            for r in roles:
                if r["org"] and r["org"] not in seen and r["org"] in self.orgs:
                    seen.append(r["org"])
            included["organizations"] = [self.org_json(self.orgs[g]) for g in seen]
        if included:
            body["included"] = included
        return body

    def cc_roles(self, method, path, q, body, caller):
        if method == "POST":
            return self.create_role(json_body(body), caller)
        if method != "GET":
            raise unknown_request(method, path)
        f, inc, page, per_page, order = self.list_params("roles", q)
        items = self.readable_roles(caller)
        for key, field in (("guids", "guid"), ("types", "type"), ("space_guids", "space"),
                           ("organization_guids", "org"), ("user_guids", "user")):
            if key in f:
                items = [r for r in items if r[field] in f[key]]
        out = self.page(items, "/v3/roles", q, page, per_page, order or "created_at", self.role_json)
        return Response(200, self.include_for_roles(out, [self.roles[r["guid"]] for r in out["resources"]], inc))

    def role_message(self, req):
        """Validates a role create body (RoleCreateMessage); returns (type, user data, org guid, space guid)."""
        errors = []
        extra = [k for k in req if k not in ("type", "relationships")]
        if extra:
            errors.append("Unknown field(s): '%s'" % "', '".join(extra))
        type_ = req.get("type")
        if type_ not in ALL_ROLES:
            errors.append("Type must be one of the allowed types %s" % ruby_list(ALL_ROLES))
        rel = req.get("relationships")
        user = org = space = None
        if not isinstance(rel, dict):
            errors.append("Relationships 'relationships' is not an object")
        else:
            extra = [k for k in rel if k not in ("user", "organization", "space")]
            if extra:
                errors.append("Relationships Unknown field(s): '%s'" % "', '".join(extra))

            def data_of(k):
                v = rel.get(k)
                return v.get("data") if isinstance(v, dict) else None
            user, org_d, space_d = data_of("user"), data_of("organization"), data_of("space")
            if rel.get("user") is None:
                errors.append("Relationships User can't be blank")
            elif not isinstance(user, dict):
                errors.append("Relationships User must have a username or guid specified")
            else:
                if "guid" in user and "username" in user:
                    errors.append("Relationships Username cannot be specified when identifying user by guid")
                if "guid" in user and "origin" in user:
                    errors.append("Relationships User origin cannot be specified when identifying user by guid")
                if "username" not in user and "origin" in user:
                    errors.append("Relationships User origin cannot be specified without specifying the username")
                if "username" not in user and "guid" not in user:
                    errors.append("Relationships User must have a username or guid specified")
                if "guid" in user and not (isinstance(user["guid"], str) and 1 <= len(user["guid"]) <= 200):
                    errors.append('Relationships User must be structured like this: "user: {"data": {"guid": '
                                  '"valid-guid"}}"')
                if "username" in user and not isinstance(user["username"], str):
                    errors.append("Relationships Username must be a string")
                if user.get("origin") is not None and not isinstance(user["origin"], str):
                    errors.append("Relationships User origin must be a string")
            if space_d is None and org_d is None:
                errors.append("Relationships must specify either a space or an organization.")
            if space_d is not None and type_ in ORG_ROLES:
                errors.append("Relationships Space cannot be provided with the organization role type: '%s'."
                              % type_)
            if org_d is not None and type_ in SPACE_ROLES:
                errors.append("Relationships Organization cannot be provided with the space role type: '%s'."
                              % type_)
            if space_d is not None and org_d is not None:
                errors.append("Relationships cannot specify both an organization and a space.")
            for k, d in (("Space", space_d), ("Organization", org_d)):
                if d is not None and not (isinstance(d, dict) and isinstance(d.get("guid"), str)):
                    errors.append('Relationships %s must be structured like this: "%s: {"data": {"guid": '
                                  '"valid-guid"}}"' % (k, k.lower()))
            org = org_d.get("guid") if isinstance(org_d, dict) else None
            space = space_d.get("guid") if isinstance(space_d, dict) else None
        if errors:
            raise unprocessable(", ".join(errors))
        return type_, user, org, space

    def lookup_uaa_guid(self, username, origin, creating_space_role=False):
        """CC's lookup_user_guid_in_uaa (feature flag set_roles_by_username: on, as by default)."""
        if origin is None:
            origins = sorted({u["origin"] for u in self.uaa_users.values()
                              if u["username"].lower() == username.lower()})
            if len(origins) > 1:
                raise unprocessable("Ambiguous user. User with username '%s' exists in the following origins: %s. "
                                    "Specify an origin to disambiguate." % (username, ", ".join(origins)))
            found = self.find_uaa_user(username, origins[0]) if origins else None
        else:
            found = self.find_uaa_user(username, origin)
        if found:
            return found["id"]
        if creating_space_role:
            raise unprocessable("Users cannot be assigned roles in a space if they do not have a role in that "
                                "space's organization.")
        if origin is not None:
            raise unprocessable("No user exists with the username '%s' and origin '%s'." % (username, origin))
        raise unprocessable("No user exists with the username '%s'." % username)

    def create_role(self, req, caller):
        type_, user, org_guid, space_guid = self.role_message(req)
        self.cap(self.roles, "roles")
        by_guid = "guid" in user
        if space_guid is not None:
            s = self.spaces.get(space_guid)
            if not s:
                raise unprocessable("Invalid space. Ensure that the space exists and you have access to it.")
            if not self.can_update_space(caller, s):
                raise not_authorized()
            uid = user["guid"] if by_guid else self.lookup_uaa_guid(user["username"], user.get("origin"), True)
            if uid not in self.users or uid not in self.readable_user_guids(caller) or \
                    not self.has_role(uid, "organization_user", org=s["org"]):
                raise unprocessable("Users cannot be assigned roles in a space if they do not have a role in that "
                                    "space's organization.")
            if self.has_role(uid, type_, space=space_guid):
                raise unprocessable("User '%s' already has '%s' role in space '%s'."
                                    % (self.presentation_name(uid), type_, s["name"]))
            r = dict(self.stamp(), guid=str(uuid.uuid4()), type=type_, user=uid, org=None, space=space_guid)
        else:
            o = self.orgs.get(org_guid)
            if not o:
                raise unprocessable("Invalid organization. Ensure that the organization exists and you have access "
                                    "to it.")
            if not self.can_write_org(caller, org_guid):
                raise not_authorized()
            uid = user["guid"] if by_guid else self.lookup_uaa_guid(user["username"], user.get("origin"))
            if uid not in self.users:
                self.cap(self.users, "users")
                self.users[uid] = dict(self.stamp(), guid=uid, metadata={"labels": {}, "annotations": {}})
            if self.has_role(uid, type_, org=org_guid):
                raise unprocessable("User '%s' already has '%s' role in organization '%s'."
                                    % (self.presentation_name(uid), type_, o["name"]))
            r = dict(self.stamp(), guid=str(uuid.uuid4()), type=type_, user=uid, org=org_guid, space=None)
        self.roles[r["guid"]] = r
        return Response(201, self.role_json(r))

    def presentation_name(self, uid):
        u = self.uaa_users.get(uid)
        return u["username"] if u else uid

    def cc_role(self, method, path, q, body, caller, guid):
        r = self.roles.get(guid)
        readable = r is not None and any(x["guid"] == guid for x in self.readable_roles(caller))
        if method == "GET":
            bad = [k for k in q if k != "include"]
            if bad:
                raise unprocessable("Unknown query parameter(s): '%s'. Valid parameters are: 'include'"
                                    % "', '".join(bad))
            if not readable:
                raise not_found("Role")
            inc = split_list(q["include"]) if "include" in q else []
            if any(i not in ("user", "space", "organization") for i in inc):
                raise unprocessable("Invalid included resource: '%s'. Valid included resources are: 'user', "
                                    "'organization', 'space'" % q["include"][:100])
            return Response(200, self.include_for_roles(self.role_json(r), [r], inc))
        if method != "DELETE":
            raise unknown_request(method, path)
        if not readable:
            raise not_found("Role")
        if r["space"]:
            if not self.can_update_space(caller, self.spaces[r["space"]]):
                raise not_authorized()
        else:
            if not self.can_write_org(caller, r["org"]):
                raise not_authorized()
            if r["type"] == "organization_user" and any(
                    x["user"] == r["user"] and x["space"] in self.spaces and self.spaces[x["space"]]["org"] == r["org"]
                    for x in self.roles.values()):
                raise unprocessable("Cannot delete organization_user role while user has roles in spaces in that "
                                    "organization.")
        return self.new_job("role", guid)

    # ---------------------------------------------------------------- CC: apps, service instances, routes

    def app_json(self, a):
        g = a["guid"]
        return {"guid": g, "name": a["name"], "state": a["state"], "created_at": now_iso(a["created"]),
                "updated_at": now_iso(a["updated"]),
                "lifecycle": {"type": "buildpack", "data": {"buildpacks": [], "stack": "cflinuxfs4"}},
                "relationships": {"space": {"data": {"guid": a["space"]}}},
                "metadata": {"labels": {}, "annotations": {}},
                "links": {"self": self.link("/v3/apps/" + g), "space": self.link("/v3/spaces/" + a["space"]),
                          "processes": self.link("/v3/apps/%s/processes" % g),
                          "packages": self.link("/v3/apps/%s/packages" % g),
                          "environment_variables": self.link("/v3/apps/%s/environment_variables" % g),
                          "current_droplet": self.link("/v3/apps/%s/droplets/current" % g),
                          "droplets": self.link("/v3/apps/%s/droplets" % g),
                          "tasks": self.link("/v3/apps/%s/tasks" % g),
                          "start": {"href": self.base + "/v3/apps/%s/actions/start" % g, "method": "POST"},
                          "stop": {"href": self.base + "/v3/apps/%s/actions/stop" % g, "method": "POST"}}}

    def si_json(self, si):
        g = si["guid"]
        managed = si["kind"] == "managed"
        rel = {"space": {"data": {"guid": si["space"]}}}
        links = {"self": self.link("/v3/service_instances/" + g), "space": self.link("/v3/spaces/" + si["space"]),
                 "service_credential_bindings": self.link("/v3/service_credential_bindings?service_instance_guids="
                                                          + g),
                 "service_route_bindings": self.link("/v3/service_route_bindings?service_instance_guids=" + g)}
        if managed:
            rel["service_plan"] = {"data": {"guid": si["plan"]}}
            links["service_plan"] = self.link("/v3/service_plans/" + si["plan"])
            links["shared_spaces"] = self.link("/v3/service_instances/%s/relationships/shared_spaces" % g)
        state = "in progress" if si["operation_in_progress"] else "succeeded"
        return {"guid": g, "name": si["name"], "type": si["kind"], "created_at": now_iso(si["created"]),
                "updated_at": now_iso(si["updated"]), "tags": [], "syslog_drain_url": None, "route_service_url": None,
                "last_operation": {"type": "create", "state": state, "description": "",
                                   "created_at": now_iso(si["created"]), "updated_at": now_iso(si["updated"])},
                "relationships": rel, "metadata": {"labels": {}, "annotations": {}}, "links": links,
                **({"maintenance_info": {}, "upgrade_available": False, "dashboard_url": None} if managed else {})}

    def route_json(self, r):
        g = r["guid"]
        url = r["host"] + "." + r["domain"] if r["host"] else r["domain"]
        return {"guid": g, "protocol": "http", "port": None, "created_at": now_iso(r["created"]),
                "updated_at": now_iso(r["updated"]), "host": r["host"], "path": r["path"], "url": url + r["path"],
                "destinations": [], "options": {}, "metadata": {"labels": {}, "annotations": {}},
                "relationships": {"space": {"data": {"guid": r["space"]}},
                                  "domain": {"data": {"guid": r["domain_guid"]}}},
                "links": {"self": self.link("/v3/routes/" + g), "space": self.link("/v3/spaces/" + r["space"]),
                          "domain": self.link("/v3/domains/" + r["domain_guid"]),
                          "destinations": self.link("/v3/routes/%s/destinations" % g)}}

    def res_kind(self, what):
        return {"apps": (self.apps, self.app_json, "App"),
                "service_instances": (self.service_instances, self.si_json, "Service instance"),
                "routes": (self.routes, self.route_json, "Route")}[what]

    def cc_res_list(self, method, path, q, body, caller, what):
        if method != "GET":
            raise unknown_request(method, path)
        coll, render, _ = self.res_kind(what)
        f, inc, page, per_page, order = self.list_params(what, q)
        readable = self.readable_space_guids(caller)

        def spaces_of(x):
            # a service instance is listed in its own space and in the spaces it is shared into
            return [x["space"]] + (x["shared_to"] if what == "service_instances" else [])
        items = [x for x in coll.values() if any(s in readable for s in spaces_of(x))]
        if "guids" in f:
            items = [x for x in items if x["guid"] in f["guids"]]
        if "names" in f:
            items = [x for x in items if x["name"] in f["names"]]
        if "hosts" in f:
            items = [x for x in items if x["host"] in f["hosts"]]
        if "type" in f:
            items = [x for x in items if x["kind"] in f["type"]]
        if "space_guids" in f:
            items = [x for x in items if any(s in f["space_guids"] for s in spaces_of(x))]
        if "organization_guids" in f:
            items = [x for x in items if any(self.spaces[s]["org"] in f["organization_guids"]
                                             for s in spaces_of(x) if s in self.spaces)]
        return Response(200, self.page(items, "/v3/" + what, q, page, per_page, order, render))

    def cc_res_get(self, method, path, q, body, caller, what, guid):
        if method != "GET":
            raise unknown_request(method, path)
        coll, render, label = self.res_kind(what)
        x = coll.get(guid)
        readable = self.readable_space_guids(caller)
        if not x or not any(s in readable for s in [x["space"]] + x.get("shared_to", [])):
            raise not_found(label)
        return Response(200, render(x))

    # ---------------------------------------------------------------- control API

    def control(self, method, path, body):
        p = path.rstrip("/")
        if p == "/_fake/state" and method == "GET":
            return Response(200, self.state())
        if method != "POST":
            raise unprocessable("Use POST (GET for /_fake/state).")
        if p == "/_fake/reset":
            self.reset()
            return Response(200, self.state())
        data = json.loads(body.decode("utf-8")) if body and body.strip() else {}

        def items_of(key):
            items = data.get(key) if isinstance(data, dict) and key in data else \
                [data] if isinstance(data, dict) else data
            if not isinstance(items, list) or len(items) > 1000:
                raise unprocessable("send a JSON object, a list of at most 1000, or {\"%s\": [...]}" % key)
            return items
        if p == "/_fake/faults":
            return Response(200, {"faults": self.add_faults(items_of("faults"))})
        with self.lock:
            if p == "/_fake/orgs":
                return Response(200, {"organizations": [self.org_json(self.add_org(o)) for o in items_of("orgs")]})
            if p == "/_fake/uaa-users":
                return Response(200, {"uaa_users": [self.uaa_user_view(self.add_uaa_user(u))
                                                    for u in items_of("uaa_users")]})
            if p == "/_fake/clients":
                return Response(200, {"clients": [self.client_view(self.add_client(c))
                                                  for c in items_of("clients")]})
            if p == "/_fake/resources":
                return Response(200, {"resources": [self.seed_resource(r) for r in items_of("resources")]})
            if not isinstance(data, dict):
                raise unprocessable("send a JSON object")
            if p == "/_fake/limits":
                return Response(200, {"limits": self.set_limits(data)})
            if p == "/_fake/config":
                return Response(200, {"config": self.set_config(data)})
            if p == "/_fake/expire-tokens":
                return Response(200, self.expire_tokens(data))
        raise ApiError(404, 10000, "CF-NotFound", "No such control endpoint: %s %s" % (method, p[:100]))

    @staticmethod
    def check_fields(d, allowed, what):
        if not isinstance(d, dict):
            raise unprocessable("each %s must be a JSON object" % what)
        unknown = set(d) - set(allowed)
        if unknown:
            raise unprocessable("unknown %s fields: %s" % (what, ", ".join(sorted(unknown))[:200]))

    @staticmethod
    def check_str(d, key, required=False, maxlen=255):
        v = d.get(key)
        if v is None:
            if required:
                raise unprocessable("%s is required" % key)
            return None
        if not isinstance(v, str) or not v or len(v) > maxlen or any(ord(c) < 32 for c in v):
            raise unprocessable("%s must be a non-empty string of at most %d characters" % (key, maxlen))
        return v

    def add_org(self, d):
        self.check_fields(d, ("name", "guid", "suspended"), "org")
        name = self.check_str(d, "name", required=True)
        guid = self.check_str(d, "guid", maxlen=200) or str(uuid.uuid4())
        if "suspended" in d and not isinstance(d["suspended"], bool):
            raise unprocessable("suspended must be a boolean")
        old = self.orgs.get(guid)
        if any(o["name"].lower() == name.lower() and o["guid"] != guid for o in self.orgs.values()):
            raise unprocessable("an organization named %s exists" % name)
        if old:
            old.update(name=name, suspended=d.get("suspended", old["suspended"]), updated=time.time())
            return old
        self.cap(self.orgs, "organizations")
        o = dict(self.stamp(), guid=guid, name=name, suspended=d.get("suspended", False),
                 metadata={"labels": {}, "annotations": {}})
        self.orgs[guid] = o
        return o

    def add_uaa_user(self, d):
        self.check_fields(d, ("username", "origin", "password", "id", "admin"), "UAA user")
        username = self.check_str(d, "username", required=True)
        origin = self.check_str(d, "origin") or "uaa"
        password = d.get("password")
        if password is not None and (not isinstance(password, str) or len(password) > 1000):
            raise unprocessable("password must be a string")
        if "admin" in d and not isinstance(d["admin"], bool):
            raise unprocessable("admin must be a boolean")
        uid = self.check_str(d, "id", maxlen=200)
        old = self.find_uaa_user(username, origin)
        if old and uid and old["id"] != uid:
            raise unprocessable("%s (origin %s) exists with id %s" % (username, origin, old["id"]))
        if not old and uid and uid in self.uaa_users:
            raise unprocessable("UAA user id %s is taken" % uid)
        if old:
            if "password" in d:
                old["password"] = password
            if "admin" in d:
                old["admin"] = d["admin"]
            return old
        self.cap(self.uaa_users, "UAA users")
        u = {"id": uid or str(uuid.uuid4()), "username": username, "origin": origin, "password": password,
             "admin": d.get("admin", False), "seq": self.next_seq()}
        self.uaa_users[u["id"]] = u
        return u

    @staticmethod
    def uaa_user_view(u):
        return {"id": u["id"], "username": u["username"], "origin": u["origin"], "admin": u["admin"],
                "has_password": u["password"] is not None}

    def add_client(self, d):
        self.check_fields(d, ("client_id", "client_secret", "admin", "authorities", "grant_types", "scope"), "client")
        cid = self.check_str(d, "client_id", required=True)
        if cid == "cf":
            raise unprocessable("the cf client is built in")
        secret = d.get("client_secret")
        if not isinstance(secret, str) or len(secret) > 1000:
            raise unprocessable("client_secret must be a string")
        admin = d.get("admin", False)
        if not isinstance(admin, bool):
            raise unprocessable("admin must be a boolean")
        lists = {}
        for k, default in (("authorities", ["cloud_controller.read", "cloud_controller.write"]
                            + (["cloud_controller.admin"] if admin else [])),
                           ("grant_types", ["client_credentials"]), ("scope", ["uaa.none"])):
            v = d.get(k, default)
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or len(v) > 100:
                raise unprocessable("%s must be a list of strings" % k)
            lists[k] = v
        bad = set(lists["grant_types"]) - {"client_credentials", "password", "refresh_token"}
        if bad:
            raise unprocessable("grant_types: %s not modelled" % ", ".join(sorted(bad)))
        self.cap(self.clients, "clients")
        old = self.clients.get(cid)
        c = {"client_id": cid, "secret": secret, "admin": admin, "seq": old["seq"] if old else self.next_seq(),
             **lists}
        self.clients[cid] = c
        return c

    @staticmethod
    def client_view(c):
        return {"client_id": c["client_id"], "admin": c["admin"], "authorities": c["authorities"],
                "grant_types": c["grant_types"], "scope": c["scope"]}

    def seed_resource(self, d):
        if not isinstance(d, dict):
            raise unprocessable("each resource must be a JSON object")
        kind = d.get("type")
        colls = {"app": self.apps, "service_instance": self.service_instances, "route": self.routes}
        if kind not in colls:
            raise unprocessable("type must be app, service_instance or route")
        coll = colls[kind]
        if d.get("remove"):
            self.check_fields(d, ("type", "guid", "remove"), "resource")
            guid = self.check_str(d, "guid", required=True, maxlen=200)
            if coll.pop(guid, None) is None:
                raise ApiError(404, 10010, "CF-ResourceNotFound", "no %s %s" % (kind, guid))
            return {"type": kind, "guid": guid, "removed": True}
        allowed = {"app": ("type", "space_guid", "name", "guid", "state"),
                   "service_instance": ("type", "space_guid", "name", "guid", "kind", "shared_to",
                                        "operation_in_progress"),
                   "route": ("type", "space_guid", "host", "domain", "path", "guid")}[kind]
        self.check_fields(d, allowed, kind)
        sg = self.check_str(d, "space_guid", required=True, maxlen=200)
        if sg not in self.spaces:
            raise ApiError(404, 10010, "CF-ResourceNotFound", "no space %s" % sg)
        guid = self.check_str(d, "guid", maxlen=200) or str(uuid.uuid4())
        if guid in coll:
            raise unprocessable("%s %s exists" % (kind, guid))
        self.cap(coll, kind + "s")
        rec = dict(self.stamp(), guid=guid, space=sg)
        if kind == "app":
            rec["name"] = self.check_str(d, "name", required=True)
            rec["state"] = d.get("state", "STOPPED")
            if rec["state"] not in ("STARTED", "STOPPED"):
                raise unprocessable("state must be STARTED or STOPPED")
        elif kind == "service_instance":
            rec["name"] = self.check_str(d, "name", required=True)
            rec["kind"] = d.get("kind", "managed")
            if rec["kind"] not in ("managed", "user-provided"):
                raise unprocessable("kind must be managed or user-provided")
            shared = d.get("shared_to", [])
            if not isinstance(shared, list) or not all(isinstance(x, str) and x in self.spaces and x != sg
                                                       for x in shared):
                raise unprocessable("shared_to must list other existing space guids")
            rec["shared_to"] = list(dict.fromkeys(shared))
            rec["operation_in_progress"] = d.get("operation_in_progress", False)
            if not isinstance(rec["operation_in_progress"], bool):
                raise unprocessable("operation_in_progress must be a boolean")
            rec["plan"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-cf-fake-plan"))
        else:
            host = d.get("host", "")
            if not isinstance(host, str) or not re.match(r"^[a-z0-9-]{0,63}$", host):
                raise unprocessable("host must be a DNS label (or empty)")
            rec["host"] = host
            rec["name"] = host
            rec["domain"] = self.check_str(d, "domain") or DEFAULT_DOMAIN
            rec["domain_guid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-cf-fake-domain:" + rec["domain"]))
            path = d.get("path", "")
            if not isinstance(path, str) or (path and not re.match(r"^/[^\s?#]{1,127}$", path)):
                raise unprocessable("path must be empty or start with /")
            rec["path"] = path
        coll[guid] = rec
        return {"type": kind, **{"app": self.app_json, "service_instance": self.si_json,
                                 "route": self.route_json}[kind](rec)}

    def set_limits(self, d):
        unknown = set(d) - set(DEFAULT_LIMITS)
        if unknown:
            raise unprocessable("unknown limits fields: %s" % ", ".join(sorted(unknown))[:200])
        if "enabled" in d and not isinstance(d["enabled"], bool):
            raise unprocessable("enabled must be a boolean")
        for k in ("general_limit", "unauthenticated_limit"):
            if k in d and (type(d[k]) is not int or not 1 <= d[k] <= 10_000_000):
                raise unprocessable("%s must be a positive integer" % k)
        k = "reset_interval_in_minutes"
        if k in d and (not isinstance(d[k], (int, float)) or isinstance(d[k], bool) or not 0.02 <= d[k] <= 1440):
            raise unprocessable("%s must be a number 0.02..1440 (fractions are a fake extension)" % k)
        self.limits.update(d)
        self.windows = {}
        return dict(self.limits)

    def set_config(self, d):
        for k, v in d.items():
            if k not in DEFAULT_CONFIG:
                raise unprocessable("unknown config key %s" % k[:50])
            lo, hi = {"job_polls": (0, 100), "job_seconds": (0, 3600), "token_lifetime": (1, 86400 * 30),
                      "default_per_page": (1, 5000)}[k]
            if type(v) is not int or not lo <= v <= hi:
                raise unprocessable("%s must be an integer %d..%d" % (k, lo, hi))
            self.config[k] = v
        return dict(self.config)

    def expire_tokens(self, d):
        self.check_fields(d, ("access", "refresh"), "expire-tokens")
        access, refresh = d.get("access", True), d.get("refresh", False)
        if not isinstance(access, bool) or not isinstance(refresh, bool):
            raise unprocessable("access and refresh are booleans")
        past = time.time() - 1
        n = {"access": 0, "refresh": 0}
        for flag, store, key in ((access, self.tokens, "access"), (refresh, self.refresh, "refresh")):
            if flag:
                for v in store.values():
                    if v["expires"] > past:
                        v["expires"] = past
                        n[key] += 1
        return {"expired": n}

    def state(self):
        with self.lock:
            def ordered(coll):
                return sorted(coll.values(), key=lambda x: x["seq"])
            return {
                "api": self.base, "organization": self.org_name, "organization_guid": self.org_guid,
                "admin": {"username": self.admin_user, "id": self.admin_id},
                "config": dict(self.config), "limits": dict(self.limits),
                "organizations": [{"guid": o["guid"], "name": o["name"], "suspended": o["suspended"]}
                                  for o in ordered(self.orgs)],
                "spaces": [{"guid": s["guid"], "name": s["name"], "organization_guid": s["org"]}
                           for s in ordered(self.spaces)],
                "uaa_users": [self.uaa_user_view(u) for u in ordered(self.uaa_users)],
                "clients": [self.client_view(c) for c in ordered(self.clients)],
                "users": [{"guid": u["guid"], "username": self.user_json(u)["username"],
                           "origin": self.user_json(u)["origin"]} for u in ordered(self.users)],
                "roles": [{"guid": r["guid"], "type": r["type"], "user_guid": r["user"],
                           "organization_guid": r["org"], "space_guid": r["space"]} for r in ordered(self.roles)],
                "apps": [{"guid": a["guid"], "name": a["name"], "space_guid": a["space"]} for a in ordered(self.apps)],
                "service_instances": [{"guid": s["guid"], "name": s["name"], "space_guid": s["space"],
                                       "shared_to": list(s["shared_to"]),
                                       "operation_in_progress": s["operation_in_progress"]}
                                      for s in ordered(self.service_instances)],
                "routes": [{"guid": r["guid"], "host": r["host"], "domain": r["domain"], "space_guid": r["space"]}
                           for r in ordered(self.routes)],
                "jobs": [{"guid": j["guid"], "operation": j["operation"], "state": j["state"],
                          "resource_guid": j["rguid"]} for j in ordered(self.jobs)],
                "faults": [dict(f) for f in self.faults],
                "requests": json.loads(json.dumps(self.counts)),
            }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def version_string(self):
        return "cf-fake"

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                    if size < 0:
                        raise ValueError
                except ValueError:
                    self.close_connection = True
                    raise ApiError(400, 1001, "CF-MessageParseError", "Request invalid due to parse error: bad "
                                   "chunked encoding")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, 10004, "CF-InvalidRequest", "The request body exceeds 1 MiB.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(400, 10004, "CF-InvalidRequest", "Content-Length is not valid.")
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, 10004, "CF-InvalidRequest", "The request body exceeds 1 MiB.")
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise ApiError(400, 10004, "CF-InvalidRequest", "The request body is shorter than Content-Length.")
        return data

    def handle_method(self):
        fake = self.server.fake
        try:
            split = urllib.parse.urlsplit(self.path)
            raw_path, query = split.path or "/", split.query
            path = urllib.parse.unquote(raw_path)
            body = self.read_body()
            if path == "/_fake" or path.startswith("/_fake/"):
                if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                    raise ApiError(403, 10003, "CF-NotAuthorized", "The control API answers loopback clients only.")
                try:
                    resp = fake.control(self.command, path, body)
                except (ValueError, UnicodeDecodeError, RecursionError) as e:
                    raise unprocessable("The control request is not valid JSON: %s" % str(e)[:200])
            else:
                resp = fake.serve(self.command, raw_path, query, self.headers, body, self.client_address[0])
        except (ApiError, OAuthError) as e:
            resp = fake.error_response(e)
        except Exception:
            traceback.print_exc()
            resp = fake.error_response(ApiError(500, 10001, "UnknownError", "An unknown error occurred."))
        if resp.lost:
            self.log_message('"%s" LOST (applied, connection closed without an answer)', self.requestline)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send(resp)

    def send(self, resp):
        payload = b""
        if resp.body is not None:
            payload = json.dumps(resp.body).encode("utf-8")
        self.send_response(resp.status)
        if resp.body is not None:
            self.send_header("Content-Type", resp.ctype or "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-VCAP-Request-ID", "%s::%s" % (uuid.uuid4(), uuid.uuid4()))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        # malformed request lines/headers: a CC-shaped JSON error instead of HTML
        self.close_connection = True
        try:
            body = json.dumps({"errors": [{"detail": "%d %s" % (code, message or ""),
                                           "title": "CF-InvalidRequest" if code < 500 else "UnknownError",
                                           "code": 10004 if code < 500 else 10001}]}).encode()
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = handle_method

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3], fmt % args))


class Server(TlsServer):
    def __init__(self, addr, fake, ctx):
        super().__init__(addr, Handler, ctx, MAX_THREADS, IDLE_TIMEOUT)
        self.fake = fake


def make_certs(directory):
    return fake_tls.make_certs(directory, "Canopy Cloud Foundry fake test CA")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="instance directory (certificates are written here)")
    parser.add_argument("--org", required=True, help="name of the organization the fake holds")
    parser.add_argument("--admin-user", required=True)
    parser.add_argument("--admin-password", default=os.environ.get("CF_FAKE_ADMIN_PASSWORD"))
    args = parser.parse_args()
    if not args.admin_password:
        parser.error("give the admin password (CF_FAKE_ADMIN_PASSWORD or --admin-password)")
    paths = make_certs(args.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server.pem"], paths["server-key.pem"])
    base = "https://127.0.0.1:%d" % args.port
    fake = Fake(base, args.org, args.admin_user, args.admin_password)
    server = Server(("127.0.0.1", args.port), fake, ctx)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    sys.stderr.write("cf fake serving %s (organization %s, admin %s)\n" % (base, args.org, args.admin_user))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
