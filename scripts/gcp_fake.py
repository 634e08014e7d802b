"""A test fixture: a stateful, in-memory fake of the Google Cloud APIs the GCP adapter uses
(OAuth 2.0 JWT-bearer tokens for a service account and self-signed JWT access tokens,
Resource Manager v3 projects with their long-running operations and IAM policies, Cloud
Asset searchAllResources). Not for any other use.

Run by scripts/gcp: python3 gcp_fake.py --port PORT --dir DIR --folder folders/N. Serves
HTTPS on 127.0.0.1 only, with a CA and server certificate made at start (DIR/ca.pem,
DIR/server.pem, DIR/server-key.pem) and a service-account key made at start
(DIR/key.json, `token_uri` on the fake). Behaviour and sources: docs/platforms/gcp-api.md;
the control API for tests (/_fake/...) is described in scripts/gcp.
"""
import argparse
import base64
import binascii
import datetime
import hashlib
import http.server
import ipaddress
import json
import math
import os
import random
import re
import secrets
import shlex
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse

import fake_tls  # scripts/fake_tls.py, beside this file
from fake_tls import TlsServer

MAX_BODY = 1 << 20          # request bodies above 1 MiB are refused (413)
MAX_THREADS = 64            # connections served at once; more are closed at accept
IDLE_TIMEOUT = 30           # seconds a connection may sit idle (keep-alive) or stall
MAX_DELAY_MS = 120_000      # upper bound of a fault's delay_ms
MAX_FAULTS = 1000
MAX_TOKENS = 10_000
MAX_OPERATIONS = 10_000
MAX_PROJECTS = 10_000
MAX_RESOURCES = 100_000
MAX_JWT = 8192              # characters of a bearer JWT or an assertion
JWT_MAX_LIFETIME = 3600 + 120   # exp - iat; Google's 1 h plus the Rust client's skew fudge (2 x 10 s) and slack
CLOCK_SKEW = 300            # seconds of clock difference tolerated on iat / exp

SCOPE_ALL = "https://www.googleapis.com/auth/cloud-platform"
SCOPE_READ = "https://www.googleapis.com/auth/cloud-platform.read-only"
CRM = "crm"
ASSET = "asset"
SERVICE_HOST = {CRM: "cloudresourcemanager.googleapis.com", ASSET: "cloudasset.googleapis.com"}
# JWT `aud` values the real token endpoint answers to (google-auth hard-codes the first)
TOKEN_AUDIENCES = {"https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token",
                   "https://accounts.google.com/o/oauth2/token"}
GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

SA_PROJECT = "canopy-admin"
SA_PROJECT_NUMBER = "100000000001"
SA_EMAIL = "canopy@%s.iam.gserviceaccount.com" % SA_PROJECT

T_OP_CREATE = "type.googleapis.com/google.cloud.resourcemanager.v3.CreateProjectMetadata"
T_OP_DELETE = "type.googleapis.com/google.cloud.resourcemanager.v3.DeleteProjectMetadata"
T_OP_UNDELETE = "type.googleapis.com/google.cloud.resourcemanager.v3.UndeleteProjectMetadata"
T_OP_UPDATE = "type.googleapis.com/google.cloud.resourcemanager.v3.UpdateProjectMetadata"
T_PROJECT = "type.googleapis.com/google.cloud.resourcemanager.v3.Project"
T_ERRORINFO = "type.googleapis.com/google.rpc.ErrorInfo"
T_BADREQUEST = "type.googleapis.com/google.rpc.BadRequest"
T_PRECONDITION = "type.googleapis.com/google.rpc.PreconditionFailure"
T_QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
T_RESOURCEINFO = "type.googleapis.com/google.rpc.ResourceInfo"

# google.rpc.Code: HTTP status -> default status name, and name -> number (for operation errors)
HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
               503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
RPC_CODE = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
            "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
            "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
            "DATA_LOSS": 15, "UNAUTHENTICATED": 16}
STATE_NUM = {"STATE_UNSPECIFIED": 0, "ACTIVE": 1, "DELETE_REQUESTED": 2}
LOG_TYPE_NUM = {"LOG_TYPE_UNSPECIFIED": 0, "ADMIN_READ": 1, "DATA_WRITE": 2, "DATA_READ": 3}

PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
RESTRICTED_IN_ID = ("google", "ssl")
DISPLAY_NAME = re.compile(r"^[A-Za-z0-9'\"! -]{4,30}$")
LABEL_KEY = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([a-z]([-a-z0-9]*[a-z0-9])?)?$")
PARENT = re.compile(r"^(folders|organizations)/([1-9][0-9]{0,18})$")
EMAIL = re.compile(r"^[^@\s:?]+@[^@\s:?]+\.[^@\s:?]+$")
DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", re.I)
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer", "roles/browser"}
PREDEFINED_ROLE = re.compile(r"^roles/[a-z][a-zA-Z0-9]*\.[a-zA-Z][a-zA-Z0-9_.]{0,99}$")
CUSTOM_ROLE = re.compile(r"^(projects/[^/]+|organizations/[0-9]+)/roles/[a-zA-Z0-9_.]{3,64}$")
MAX_PRINCIPALS = 1500
MAX_GROUP_PRINCIPALS = 250

# the quotas of docs/platforms/gcp-api.md section 5.1 (Resource Manager) and 4.3 (Cloud Asset), per consumer
# project; `cost` is taken from the group's buckets (CreateProject costs 10 writes)
DEFAULT_LIMITS = {"list": {"per_second": 10, "per_minute": 600}, "search": {"per_second": 4, "per_minute": 240},
                  "reads": {"per_second": 10, "per_minute": 600}, "writes": {"per_second": 10, "per_minute": 600},
                  "asset_search": {"per_second": 0, "per_minute": 400}}
LIMIT_NAMES = {"list": ("v3 API list requests", "v3 API list requests per minute", CRM),
               "search": ("v3 API search requests", "v3 API search requests per minute", CRM),
               "reads": ("Read requests", "Read requests per minute", CRM),
               "writes": ("Write requests", "Write requests per minute", CRM),
               "asset_search": ("Search all resources requests", "Search all resources requests per minute",
                                ASSET)}
DEFAULT_CONFIG = {"page_size": 100, "create_polls": 1, "delete_polls": 0, "undelete_polls": 0, "update_polls": 0,
                  "project_quota": None, "search_delay_ms": 0, "refuse_user_owner": True, "token_lifetime": 3599}

KNOWN_ASSET_TYPES = {"cloudresourcemanager.googleapis.com/Project", "compute.googleapis.com/Instance",
                     "compute.googleapis.com/Network", "compute.googleapis.com/Subnetwork",
                     "compute.googleapis.com/Disk", "compute.googleapis.com/Firewall",
                     "storage.googleapis.com/Bucket", "iam.googleapis.com/ServiceAccount",
                     "serviceusage.googleapis.com/Service", "bigquery.googleapis.com/Dataset",
                     "sqladmin.googleapis.com/Instance", "container.googleapis.com/Cluster",
                     "pubsub.googleapis.com/Topic", "run.googleapis.com/Service",
                     "cloudfunctions.googleapis.com/CloudFunction", "secretmanager.googleapis.com/Secret"}
ASSET_TYPE = re.compile(r"^[a-z][a-z0-9.-]*\.googleapis\.com/[A-Za-z][A-Za-z0-9]*$")
RESULT_FIELDS = ["name", "assetType", "project", "folders", "organization", "displayName", "description",
                 "location", "labels", "networkTags", "kmsKeys", "createTime", "updateTime", "state",
                 "additionalAttributes", "parentFullResourceName", "parentAssetType"]
ORDERABLE = {"name", "assetType", "project", "displayName", "description", "location", "createTime",
             "updateTime", "state", "parentFullResourceName", "parentAssetType"}

MSG_PERMISSION = "The caller does not have permission"
MSG_UNAUTH = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
              "other valid authentication credential. See "
              "https://developers.google.com/identity/sign-in/web/devconsole-project.")
MSG_MISSING = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
               "cookie or other valid authentication credential. See "
               "https://developers.google.com/identity/sign-in/web/devconsole-project.")
MSG_CONCURRENT = ("There were concurrent policy changes. Please retry the whole read-modify-write with "
                  "exponential backoff.")


def ts(t=None):
    """RFC 3339 UTC with milliseconds, as proto3 JSON writes google.protobuf.Timestamp."""
    d = datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def b64url_decode(s):
    if not isinstance(s, str) or not re.match(r"^[A-Za-z0-9_-]*$", s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def camel(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class ApiError(Exception):
    """An error answer. `status` is the google.rpc.Code name; for the token endpoint `oauth` is the
    OAuth `error` value and the body is OAuth-shaped."""

    def __init__(self, http, message, status=None, details=None, headers=None, oauth=None):
        super().__init__(message)
        self.http, self.message = http, message
        self.status = status or HTTP_STATUS.get(http, "UNKNOWN")
        self.details = details or []
        self.headers = headers or {}
        self.oauth = oauth


def bad_request(message, field=None):
    details = [{"@type": T_BADREQUEST, "fieldViolations": [{"field": field, "description": message}]}] \
        if field else []
    return ApiError(400, message, "INVALID_ARGUMENT", details)


def not_modelled(what):
    return ApiError(400, "%s is not modelled by the Google Cloud fake." % what, "INVALID_ARGUMENT")


def denied(resource=None, permission=None):
    if resource and permission:
        return ApiError(403, "Permission '%s' denied on resource '%s' (or it may not exist)."
                        % (permission, resource), "PERMISSION_DENIED",
                        [{"@type": T_ERRORINFO, "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com",
                          "metadata": {"permission": permission, "resource": resource.lstrip("/")}}])
    return ApiError(403, MSG_PERMISSION, "PERMISSION_DENIED")


class Response:
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self.lost = False


def json_value(body, required=True):
    if not body or not body.strip():
        if required:
            raise bad_request("Invalid JSON payload received. Unexpected end of string.")
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise bad_request("Invalid JSON payload received. Unexpected token. %s" % str(e)[:200])
    if not isinstance(value, dict):
        raise bad_request("Invalid JSON payload received. Unknown name \"\": Root element must be a message.")
    return value


def message(d, allowed, where):
    """d with snake_case keys turned lowerCamel (proto3 JSON parsers accept both); unknown fields refused
    the way Google's front end does."""
    if not isinstance(d, dict):
        raise bad_request("Invalid JSON payload received. Expected an object at '%s'." % where, where)
    out = {}
    for k, v in d.items():
        c = camel(k)
        if c not in allowed:
            msg = "Invalid JSON payload received. Unknown name \"%s\"%s: Cannot find field." % (
                k[:100], " at '%s'" % where if where else "")
            raise bad_request(msg, where or k[:100])
        out[c] = v
    return out


def expect_type(v, types, where, what):
    types = types if isinstance(types, tuple) else (types,)
    if v is None:
        return v
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
        raise bad_request("Invalid value at '%s': expected %s." % (where, what), where)
    return v


class Buckets:
    """A per-second and a per-minute token bucket (a rate of 0 means no such window)."""

    def __init__(self, per_second, per_minute):
        now = time.monotonic()
        self.windows = []
        if per_second:
            self.windows.append([float(per_second), float(per_second), float(per_second), now])
        if per_minute:
            self.windows.append([float(per_minute), float(per_minute) / 60.0, float(per_minute), now])

    def take(self, cost):
        """(allowed, seconds until it would be)"""
        now = time.monotonic()
        wait = 0.0
        for w in self.windows:
            cap, rate, tokens, last = w
            w[2] = min(cap, tokens + (now - last) * rate)
            w[3] = now
            need = min(cost, cap)
            if w[2] < need:
                wait = max(wait, (need - w[2]) / rate if rate > 0 else 60)
        if wait > 0:
            return False, wait
        for w in self.windows:
            w[2] -= min(cost, w[0])
        return True, 0


class Fake:
    def __init__(self, base_url, key, folder):
        self.base = base_url
        self.token_uri = base_url + "/token"
        self.key = key                 # {"private_key_id", "client_email", "public_key" (cryptography)}
        self.default_folder = folder
        self.lock = threading.RLock()
        self.tokens = {}               # access token -> {"scopes": set, "expires": epoch}
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self):
        with self.lock:
            self.config = dict(DEFAULT_CONFIG)
            self.limits_enabled = False
            self.limits_retry_after = False
            self.limits = json.loads(json.dumps(DEFAULT_LIMITS))
            self.buckets = {}
            self.spent = {}         # limit group -> units taken while limits were on (for the bench)
            self.folders = {}          # "folders/N" | "organizations/N" -> {"name", "displayName", "parent"}
            self.add_container({"name": self.default_folder, "displayName": "canopy-landing-zone"})
            self.projects = {}         # number -> project
            self.by_id = {}            # projectId -> number (deleted and purged projects stay: IDs never reused)
            self.foreign = set()       # project IDs held by someone else
            self.operations = {}       # name -> operation
            self.faults = []
            self.counts = {"total": 0, "token": 0, "crm": 0, "asset": 0, "throttled": 0, "lost": 0,
                           "faults_applied": 0, "auth_access_token": 0, "auth_self_signed_jwt": 0,
                           "auth_failed": 0, "methods": {}}
            self.seq = 0

    def next_seq(self):
        self.seq += 1
        return self.seq

    def add_container(self, d):
        d = message(d, {"name", "displayName", "parent"}, "")
        name = d.get("name")
        if not isinstance(name, str) or not PARENT.match(name):
            raise bad_request("name must be folders/N or organizations/N (N digits)")
        parent = d.get("parent")
        if parent is not None and (not isinstance(parent, str) or not PARENT.match(parent)):
            raise bad_request("parent must be folders/N or organizations/N")
        display = d.get("displayName") or name
        if not isinstance(display, str):
            raise bad_request("displayName must be a string")
        self.folders[name] = {"name": name, "displayName": display, "parent": parent}
        return dict(self.folders[name])

    # ---------------------------------------------------------------- entry

    def route(self, method, path):
        """(service, rpc, limit group, cost, handler, args) for a request, or a 404."""
        m = re.match(r"^/v3/(.*)$", path)
        if m:
            rest = m.group(1)
            if rest == "projects":
                if method == "POST":
                    return CRM, "CreateProject", "writes", 10, self.create_project, ()
                if method == "GET":
                    return CRM, "ListProjects", "list", 1, self.list_projects, ()
            elif rest == "projects:search":
                if method == "GET":
                    return CRM, "SearchProjects", "search", 1, self.search_projects, ()
            elif rest.startswith("operations/") and len(rest) > len("operations/"):
                if method == "GET":
                    return CRM, "GetOperation", "reads", 1, self.get_operation, (rest,)
            else:
                pm = re.match(r"^projects/([^/:]+)(?::([A-Za-z]+))?$", rest)
                if pm:
                    key, verb = pm.group(1), pm.group(2)
                    table = {
                        (None, "GET"): ("GetProject", "reads", self.get_project),
                        (None, "PATCH"): ("UpdateProject", "writes", self.update_project),
                        (None, "DELETE"): ("DeleteProject", "writes", self.delete_project),
                        ("undelete", "POST"): ("UndeleteProject", "writes", self.undelete_project),
                        ("getIamPolicy", "POST"): ("GetIamPolicy", "reads", self.get_iam_policy),
                        ("setIamPolicy", "POST"): ("SetIamPolicy", "writes", self.set_iam_policy),
                        ("testIamPermissions", "POST"): ("TestIamPermissions", "reads", self.test_permissions),
                    }
                    hit = table.get((verb, method))
                    if hit:
                        return CRM, hit[0], hit[1], 1, hit[2], (key,)
        m = re.match(r"^/v1/((?:projects|folders|organizations)/[^/:]+):searchAllResources$", path)
        if m and method == "GET":
            return ASSET, "SearchAllResources", "asset_search", 1, self.search_all_resources, (m.group(1),)
        raise ApiError(404, "%s %s is not a method the Google Cloud fake serves." % (method, path[:200]),
                       "NOT_FOUND")

    def serve(self, method, raw_path, query, headers, body):
        """Answers one non-control request."""
        path = urllib.parse.unquote(raw_path)
        kind = "token" if path == "/token" else None
        with self.lock:
            self.counts["total"] += 1
            fault = self.take_fault(method, raw_path, query, body)
        try:
            if fault and fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000.0)
            q = urllib.parse.parse_qs(query, keep_blank_values=True)
            if kind == "token":
                with self.lock:
                    self.counts["token"] += 1
                    self.count_method("Token")
            else:
                service, rpc, group, cost, handler, args = self.route(method, path)
                kind = service
                with self.lock:
                    self.counts[service] += 1
                    self.count_method(rpc)
            if fault and fault.get("status"):
                st = fault["status"]
                hdrs = {}
                if fault.get("retry_after") is not None:
                    hdrs["Retry-After"] = str(fault["retry_after"])
                msg = fault.get("message") or {
                    429: "Quota exceeded (injected by the Google Cloud fake).",
                    500: "Internal error encountered.",
                    503: "The service is currently unavailable."}[st]
                oauth = {429: "rate_limit_exceeded", 500: "internal_failure", 503: "temporarily_unavailable"}[st]
                raise ApiError(st, msg, headers=hdrs, oauth=oauth)
            if kind == "token":
                resp = self.token_api(method, headers, body)
            else:
                numeric = self.alt(q)
                scopes = self.authenticate(headers, kind, rpc)
                if group in ("reads", "list", "search", "asset_search") and not (scopes & {SCOPE_ALL, SCOPE_READ}) \
                        or group == "writes" and SCOPE_ALL not in scopes:
                    raise ApiError(403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED",
                                   [{"@type": T_ERRORINFO, "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                                     "domain": "googleapis.com",
                                     "metadata": {"service": SERVICE_HOST[kind], "method": self.full_method(kind, rpc)}}])
                self.limit(group, cost)
                with self.lock:
                    resp = handler(*args, q=q, body=body, numeric=numeric)
        except ApiError as e:
            resp = self.error_response(kind, e)
        if resp.status == 429:
            with self.lock:
                self.counts["throttled"] += 1
        if fault and fault.get("lost"):
            resp.lost = True
            with self.lock:
                self.counts["lost"] += 1
        return resp

    def count_method(self, rpc):
        self.counts["methods"][rpc] = self.counts["methods"].get(rpc, 0) + 1

    @staticmethod
    def full_method(kind, rpc):
        if kind == ASSET:
            return "google.cloud.asset.v1.AssetService.%s" % rpc
        if rpc == "GetOperation":
            return "google.longrunning.Operations.GetOperation"
        return "google.cloud.resourcemanager.v3.Projects.%s" % rpc

    @staticmethod
    def alt(q):
        """True when the client asked for enums as numbers ($alt=json;enum-encoding=int)."""
        vals = q.get("$alt") or []
        numeric = False
        for v in vals:
            parts = [p.strip() for p in v.split(";")]
            if parts[0] not in ("json", ""):
                raise not_modelled("$alt=%s" % v[:40])
            for p in parts[1:]:
                if p == "enum-encoding=int":
                    numeric = True
        return numeric

    def error_response(self, kind, e):
        if kind == "token":
            body = {"error": e.oauth or {400: "invalid_request", 401: "invalid_client"}.get(e.http, "server_error"),
                    "error_description": e.message}
        else:
            err = {"code": e.http, "message": e.message, "status": e.status}
            if e.details:
                err["details"] = e.details
            body = {"error": err}
        return Response(e.http, body, e.headers)

    # ---------------------------------------------------------------- faults

    def add_faults(self, items):
        added = []
        for f in items:
            if not isinstance(f, dict):
                raise bad_request("each fault must be a JSON object")
            unknown = set(f) - {"path_contains", "body_contains", "method", "status", "retry_after", "lost",
                                "delay_ms", "times", "message"}
            if unknown:
                raise bad_request("unknown fault fields: %s" % ", ".join(sorted(unknown)))
            pc = f.get("path_contains", "")
            if not isinstance(pc, str):
                raise bad_request("path_contains must be a string")
            bc = f.get("body_contains")
            if bc is not None and (not isinstance(bc, str) or not bc or len(bc) > 1000):
                raise bad_request("body_contains must be a string of 1..1000 characters")
            method = f.get("method")
            if method is not None and (not isinstance(method, str) or not method.isalpha()):
                raise bad_request("method must be an HTTP method name")
            status = f.get("status")
            if status is not None and status not in (429, 500, 503):
                raise bad_request("status must be 429, 500 or 503")
            ra = f.get("retry_after")
            if ra is not None and (type(ra) is not int or not 0 <= ra <= 3600):
                raise bad_request("retry_after must be an integer 0..3600")
            if ra is not None and status is None:
                raise bad_request("retry_after needs a status")
            lost = f.get("lost", False)
            if not isinstance(lost, bool):
                raise bad_request("lost must be a boolean")
            if lost and status is not None:
                raise bad_request("a fault is either lost or has a status, not both")
            delay = f.get("delay_ms", 0)
            if type(delay) is not int or not 0 <= delay <= MAX_DELAY_MS:
                raise bad_request("delay_ms must be an integer 0..%d" % MAX_DELAY_MS)
            times = f.get("times", 1)
            if type(times) is not int or not 1 <= times <= 10000:
                raise bad_request("times must be an integer 1..10000")
            if not status and not lost and not delay:
                raise bad_request("a fault needs a status, lost or delay_ms")
            if f.get("message") is not None and not isinstance(f["message"], str):
                raise bad_request("message must be a string")
            added.append({"path_contains": pc, "body_contains": bc,
                          "method": method.upper() if method else None, "status": status,
                          "retry_after": ra, "lost": lost, "delay_ms": delay, "times": times,
                          "message": f.get("message")})
        with self.lock:
            if len(self.faults) + len(added) > MAX_FAULTS:
                raise bad_request("at most %d faults may be queued" % MAX_FAULTS)
            self.faults.extend(added)
            return list(self.faults)

    def take_fault(self, method, raw_path, query, body):
        """The first queued fault this request matches (its method, a part of its path and query, a part
        of its body: a test scopes its faults to its own resources, so that tests running beside it
        against the same fake are not hit), counted down."""
        target = urllib.parse.unquote(raw_path) + ("?" + urllib.parse.unquote(query) if query else "")
        for f in self.faults:
            if f["method"] and f["method"] != method:
                continue
            if f["path_contains"] not in target:
                continue
            if f["body_contains"] is not None and f["body_contains"].encode() not in (body or b""):
                continue
            f["times"] -= 1
            if f["times"] <= 0:
                self.faults.remove(f)
            self.counts["faults_applied"] += 1
            return dict(f)
        return None

    # ---------------------------------------------------------------- limits

    def quota(self):
        """What the requests taken while limits were on cost: units per limit group, and the
        least time the published limits allow for them (the bench's bound): max over groups
        and their per-second and per-minute windows of (units - window) / window rate."""
        groups, bound = {}, 0.0
        for group, units in sorted(self.spent.items()):
            lim = self.limits[group]
            for window, seconds in (("per_second", 1.0), ("per_minute", 60.0)):
                cap = float(lim.get(window) or 0)
                if cap:
                    bound = max(bound, max(0.0, units - cap) / (cap / seconds))
            groups[group] = {"units": units, **lim}
        return {"bound_seconds": bound, "groups": groups}

    def limit(self, group, cost):
        with self.lock:
            if not self.limits_enabled:
                return
            b = self.buckets.get(group)
            if b is None:
                b = self.buckets[group] = Buckets(self.limits[group]["per_second"], self.limits[group]["per_minute"])
            ok, wait = b.take(cost)
            if ok:
                self.spent[group] = self.spent.get(group, 0) + cost
        if ok:
            return
        metric, limit, service = LIMIT_NAMES[group]
        host = SERVICE_HOST[service]
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.limits_retry_after else {}
        raise ApiError(429, "Quota exceeded for quota metric '%s' and limit '%s' of service '%s' for consumer "
                       "'project_number:%s'." % (metric, limit, host, SA_PROJECT_NUMBER), "RESOURCE_EXHAUSTED",
                       [{"@type": T_ERRORINFO, "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                         "metadata": {"service": host, "consumer": "projects/" + SA_PROJECT_NUMBER,
                                      "quota_metric": "%s/%s" % (host, group), "quota_limit": limit,
                                      "quota_limit_value": str(self.limits[group]["per_minute"])}}],
                       headers=headers)

    # ---------------------------------------------------------------- auth

    def verify_jwt(self, token):
        """(header, claims) of an RS256 JWT signed by the service account's key; ValueError(why) otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if len(token) > MAX_JWT:
            raise ValueError("JWT too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValueError("JWT is not well formed")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("JWT is not well formed")
        if header.get("alg") != "RS256":
            raise ValueError("JWT alg must be RS256")
        if claims.get("iss") != self.key["client_email"]:
            raise ValueError("unknown issuer")
        kid = header.get("kid")
        if kid is not None and kid != self.key["private_key_id"]:
            raise ValueError("unknown key id")
        try:
            self.key["public_key"].verify(sig, (parts[0] + "." + parts[1]).encode("ascii"), padding.PKCS1v15(),
                                          hashes.SHA256())
        except (InvalidSignature, ValueError, UnicodeEncodeError):
            raise ValueError("Invalid JWT Signature.")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (iat, exp)):
            raise ValueError("iat and exp are required")
        now = time.time()
        if iat > now + CLOCK_SKEW or exp < now - CLOCK_SKEW or exp <= iat or exp - iat > JWT_MAX_LIFETIME:
            raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                             "timeframe. Check your iat and exp values in the JWT claim.")
        return header, claims

    def token_api(self, method, headers, body):
        if method != "POST":
            raise ApiError(405, "The token endpoint only accepts POST.", oauth="invalid_request",
                           headers={"Allow": "POST"})
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise ApiError(400, "The token request must be application/x-www-form-urlencoded.",
                           oauth="invalid_request")
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ApiError(400, "The request body is not valid form data.", oauth="invalid_request")
        one = {k: v[0] for k, v in form.items() if v}
        grant = one.get("grant_type")
        if grant != GRANT_JWT:
            raise ApiError(400, "Invalid grant_type: %s" % (grant or "")[:100], oauth="unsupported_grant_type")
        assertion = one.get("assertion")
        if not assertion:
            raise ApiError(400, "Missing required parameter: assertion", oauth="invalid_request")
        try:
            header, claims = self.verify_jwt(assertion)
        except ValueError as e:
            with self.lock:
                self.counts["auth_failed"] += 1
            why = str(e)
            if why == "unknown issuer":
                why = "Invalid grant: account not found"
            raise ApiError(400, why, oauth="invalid_grant")
        aud = claims.get("aud")
        if aud not in TOKEN_AUDIENCES and aud != self.token_uri:
            raise ApiError(400, "Invalid JWT: aud must be %s." % sorted(TOKEN_AUDIENCES)[0], oauth="invalid_grant")
        if claims.get("sub") not in (None, claims.get("iss")):
            raise ApiError(400, "Domain-wide delegation (sub) is not modelled by the Google Cloud fake.",
                           oauth="unauthorized_client")
        if "target_audience" in claims:
            raise ApiError(400, "ID tokens (target_audience) are not modelled by the Google Cloud fake.",
                           oauth="invalid_request")
        scope = claims.get("scope")
        scopes = set(scope.split()) if isinstance(scope, str) else set()
        if not scopes:
            raise ApiError(400, "Invalid OAuth scope or ID token audience provided.", oauth="invalid_scope")
        lifetime = int(self.config["token_lifetime"])
        token = "ya29.c.fake-" + secrets.token_urlsafe(48)
        with self.lock:
            if len(self.tokens) >= MAX_TOKENS:
                t = time.time()
                for k in [k for k, v in self.tokens.items() if v["expires"] < t]:
                    del self.tokens[k]
                while len(self.tokens) >= MAX_TOKENS:
                    del self.tokens[next(iter(self.tokens))]
            self.tokens[token] = {"scopes": scopes, "expires": time.time() + lifetime}
        return Response(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})

    def authenticate(self, headers, kind, rpc):
        """The caller's scopes, or a 401. Accepts the fake's access tokens and self-signed JWTs."""
        www = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        info = {"service": SERVICE_HOST[kind], "method": self.full_method(kind, rpc)}

        def fail(reason, msg=MSG_UNAUTH):
            with self.lock:
                self.counts["auth_failed"] += 1
            return ApiError(401, msg, "UNAUTHENTICATED", [{"@type": T_ERRORINFO, "reason": reason,
                                                          "domain": "googleapis.com", "metadata": info}], www)
        auth = headers.get("Authorization") or ""
        if not auth:
            raise fail("CREDENTIALS_MISSING", MSG_MISSING)
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        with self.lock:
            t = self.tokens.get(token)
        if t:
            if t["expires"] < time.time():
                raise fail("ACCESS_TOKEN_EXPIRED")
            with self.lock:
                self.counts["auth_access_token"] += 1
            return t["scopes"]
        if token.count(".") != 2:
            raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        try:
            header, claims = self.verify_jwt(token)
        except ValueError:
            raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if claims.get("sub") not in (None, claims.get("iss")):
            raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        aud, scope = claims.get("aud"), claims.get("scope")
        if aud is not None:
            want = "https://%s/" % SERVICE_HOST[kind]
            if not isinstance(aud, str) or aud.rstrip("/") + "/" != want:
                raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
            scopes = {SCOPE_ALL}
        elif isinstance(scope, str) and scope.split():
            scopes = set(scope.split())
        else:
            raise fail("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        with self.lock:
            self.counts["auth_self_signed_jwt"] += 1
        return scopes

    # ---------------------------------------------------------------- helpers

    def param(self, q, name, kind=str, default=None):
        vals = q.get(name)
        if not vals:
            return default
        v = vals[-1]
        if kind is int:
            try:
                return int(v)
            except ValueError:
                raise bad_request("Invalid value '%s' for %s: not an integer." % (v[:20], name), name)
        if kind is bool:
            if v.lower() in ("true", "1"):
                return True
            if v.lower() in ("false", "0", ""):
                return False
            raise bad_request("Invalid value '%s' for %s: not a boolean." % (v[:20], name), name)
        return v

    def page(self, items, q, fingerprint, max_size, default_size=None):
        """(page, nextPageToken or None); the token carries the offset and the query it belongs to."""
        size = self.param(q, "pageSize", int, 0)
        if size < 0:
            raise bad_request("pageSize must not be negative.", "page_size")
        cap = min(max_size, int(self.config["page_size"]))
        size = min(size, cap) if size else min(default_size or cap, cap)
        fp = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        start = 0
        tok = self.param(q, "pageToken")
        if tok:
            try:
                d = json.loads(b64url_decode(tok))
                start = int(d["o"])
                if start < 0 or d["f"] != fp:
                    raise ValueError
            except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                raise bad_request("Invalid page token.", "page_token")
        page = items[start:start + size]
        nxt = None
        if start + size < len(items):
            nxt = base64.urlsafe_b64encode(json.dumps({"o": start + size, "f": fp}).encode()).decode().rstrip("=")
        return page, nxt

    def find_project(self, key, include_purged=False):
        key = key[len("projects/"):] if key.startswith("projects/") else key
        number = key if key in self.projects else self.by_id.get(key)
        p = self.projects.get(number) if number else None
        if p is None or (p["purged"] and not include_purged):
            return None
        return p

    def project_or_403(self, key, permission="resourcemanager.projects.get"):
        p = self.find_project(key)
        if p is None:
            key = key[len("projects/"):] if key.startswith("projects/") else key
            raise denied("//cloudresourcemanager.googleapis.com/projects/%s" % key[:100], permission)
        return p

    @staticmethod
    def project_json(p, numeric=False):
        out = {"name": "projects/" + p["number"]}
        if p["parent"]:
            out["parent"] = p["parent"]
        out["projectId"] = p["projectId"]
        out["state"] = STATE_NUM[p["state"]] if numeric else p["state"]
        if p["displayName"]:
            out["displayName"] = p["displayName"]
        out["createTime"] = ts(p["createTime"])
        out["updateTime"] = ts(p["updateTime"])
        if p["deleteTime"] is not None:
            out["deleteTime"] = ts(p["deleteTime"])
        out["etag"] = p["etag"]
        if p["labels"]:
            out["labels"] = dict(p["labels"])
        return out

    @staticmethod
    def new_etag():
        return 'W/"%s"' % base64.b64encode(secrets.token_bytes(12)).decode()

    def touch(self, p):
        p["updateTime"] = time.time()
        p["etag"] = self.new_etag()

    @staticmethod
    def check_labels(labels, where):
        if labels is None:
            return {}
        if not isinstance(labels, dict):
            raise bad_request("Invalid value at '%s': expected a map of strings." % where, where)
        if len(labels) > 64:
            raise bad_request("At most 64 labels are allowed.", where)
        for k, v in labels.items():
            if not isinstance(v, str):
                raise bad_request("Invalid value at '%s[%s]': expected a string." % (where, k[:63]), where)
            if not 1 <= len(k) <= 63 or not LABEL_KEY.match(k):
                raise bad_request("Label key '%s' violates format constraints: 1-63 characters matching "
                                  "[a-z]([-a-z0-9]*[a-z0-9])?." % k[:80], where)
            if len(v) > 63 or not LABEL_VALUE.match(v):
                raise bad_request("Label value '%s' violates format constraints: 0-63 characters matching "
                                  "([a-z]([-a-z0-9]*[a-z0-9])?)?." % v[:80], where)
        return dict(labels)

    @staticmethod
    def check_display_name(v, where):
        if v is None or v == "":
            return ""
        if not isinstance(v, str) or not DISPLAY_NAME.match(v):
            raise bad_request("Display name '%s' is invalid: 4-30 characters of letters, digits, hyphen, "
                              "single quote, double quote, space or exclamation point." % str(v)[:80], where)
        return v

    # ---------------------------------------------------------------- operations

    def new_operation(self, prefix, meta_type, polls, p=None, error=None):
        if len(self.operations) >= MAX_OPERATIONS:
            for name in sorted(self.operations, key=lambda n: self.operations[n]["seq"])[:MAX_OPERATIONS // 10]:
                del self.operations[name]
        while True:
            name = "operations/%s.%d" % (prefix, random.randint(10 ** 18, 9 * 10 ** 18))
            if name not in self.operations:
                break
        op = {"name": name, "seq": self.next_seq(), "metaType": meta_type, "createTime": time.time(),
              "polls_left": polls, "done": False, "project": p["number"] if p else None, "error": error,
              "response": None}
        self.operations[name] = op
        if polls <= 0:
            self.finish(op)
        return op

    def finish(self, op):
        op["done"] = True
        if op["error"] is None and op["project"]:
            op["response"] = self.project_json(self.projects[op["project"]])

    def operation_json(self, op, brief=False):
        out = {"name": op["name"]}
        if brief and not op["done"]:
            return out   # what the real CreateProject answers first: the name only (C-OP)
        meta = {"@type": op["metaType"]}
        if op["metaType"] == T_OP_CREATE:
            meta["createTime"] = ts(op["createTime"])
            if op["error"] is None:
                meta["gettable"] = True
                if op["done"]:
                    meta["ready"] = True
        out["metadata"] = meta
        if op["done"]:
            out["done"] = True
            if op["error"] is not None:
                out["error"] = op["error"]
            else:
                out["response"] = dict({"@type": T_PROJECT}, **op["response"])
        return out

    def get_operation(self, name, q, body, numeric):
        op = self.operations.get(name)
        if op is None:
            raise ApiError(404, "Operation '%s' not found." % name[:200], "NOT_FOUND")
        if not op["done"]:
            op["polls_left"] -= 1
            if op["polls_left"] <= 0:
                self.finish(op)
        return Response(200, self.operation_json(op))

    # ---------------------------------------------------------------- projects

    PROJECT_FIELDS = {"name", "parent", "projectId", "state", "displayName", "createTime", "updateTime",
                      "deleteTime", "etag", "labels"}

    def create_project(self, q, body, numeric):
        d = message(json_value(body), self.PROJECT_FIELDS, "project")
        pid = expect_type(d.get("projectId"), str, "project.project_id", "a string")
        if not pid:
            raise bad_request("Field 'project.project_id' is required.", "project.project_id")
        if not PROJECT_ID.match(pid):
            raise bad_request("Project id '%s' is invalid: 6 to 30 lowercase letters, digits or hyphens, "
                              "starting with a letter and not ending with a hyphen." % pid[:80],
                              "project.project_id")
        for bad in RESTRICTED_IN_ID:
            if bad in pid:
                raise bad_request("Project id '%s' contains the restricted string '%s'." % (pid, bad),
                                  "project.project_id")
        parent = expect_type(d.get("parent"), str, "project.parent", "a string")
        if not parent:
            raise denied()   # a service account outside an organization must name a parent
        if not PARENT.match(parent):
            raise bad_request("Parent '%s' is invalid: folders/{folder_id} or organizations/{organization_id}."
                              % parent[:100], "project.parent")
        if parent not in self.folders:
            raise denied("//cloudresourcemanager.googleapis.com/%s" % parent, "resourcemanager.projects.create")
        display = self.check_display_name(d.get("displayName"), "project.display_name")
        labels = self.check_labels(d.get("labels"), "project.labels")
        if pid in self.by_id or pid in self.foreign:
            raise ApiError(409, "Requested entity already exists", "ALREADY_EXISTS",
                           [{"@type": T_RESOURCEINFO, "resourceType": "cloudresourcemanager.googleapis.com/Project",
                             "resourceName": "projects/" + pid}])
        quota = self.config["project_quota"]
        live = sum(1 for p in self.projects.values() if not p["purged"])
        if quota is not None and live >= quota or len(self.projects) >= MAX_PROJECTS:
            text = "The project cannot be created because you have exceeded your allotted project quota."
            op = self.new_operation("cp", T_OP_CREATE, int(self.config["create_polls"]), error={
                "code": RPC_CODE["RESOURCE_EXHAUSTED"], "message": text,
                "details": [{"@type": T_QUOTA, "violations": [{"subject": "projects/" + SA_PROJECT,
                                                                "description": text}]}]})
            return Response(200, self.operation_json(op, brief=True))
        while True:
            number = str(random.randint(10 ** 11, 10 ** 12 - 1))
            if number not in self.projects:
                break
        now = time.time()
        p = {"number": number, "projectId": pid, "parent": parent, "state": "ACTIVE", "displayName": display,
             "labels": labels, "createTime": now, "updateTime": now, "deleteTime": None, "etag": self.new_etag(),
             "purged": False, "created_mono": time.monotonic(), "seq": self.next_seq(), "resources": [],
             "liens": [],
             # the creator is owner of a new project (docs/platforms/gcp-api.md: unconfirmed real default)
             "policy": {"bindings": [{"role": "roles/owner", "members": ["serviceAccount:" + SA_EMAIL]}],
                        "auditConfigs": [], "etag": self.policy_etag()}}
        self.projects[number] = p
        self.by_id[pid] = number
        op = self.new_operation("cp", T_OP_CREATE, int(self.config["create_polls"]), p)
        return Response(200, self.operation_json(op, brief=True))

    def get_project(self, key, q, body, numeric):
        return Response(200, self.project_json(self.project_or_403(key), numeric))

    def list_projects(self, q, body, numeric):
        parent = self.param(q, "parent")
        if not parent:
            raise bad_request("Field 'parent' is required.", "parent")
        if not PARENT.match(parent):
            raise bad_request("Parent '%s' is invalid: folders/{folder_id} or organizations/{organization_id}."
                              % parent[:100], "parent")
        if parent not in self.folders:
            raise denied("//cloudresourcemanager.googleapis.com/%s" % parent, "resourcemanager.projects.list")
        show_deleted = self.param(q, "showDeleted", bool, False)
        items = [p for p in self.projects.values() if p["parent"] == parent and not p["purged"]
                 and (show_deleted or p["state"] == "ACTIVE")]
        items.sort(key=lambda p: (p["displayName"] or "", p["projectId"]))
        page, nxt = self.page(items, q, ["list", parent, show_deleted], 1000)
        out = {}
        if page:
            out["projects"] = [self.project_json(p, numeric) for p in page]
        if nxt:
            out["nextPageToken"] = nxt
        return Response(200, out)

    @staticmethod
    def query_terms(query):
        try:
            lexer = shlex.shlex(query, posix=True)
            lexer.whitespace_split = True
            lexer.commenters = ""
            return list(lexer)
        except ValueError:
            raise bad_request("Invalid query: unbalanced quotes.", "query")

    @staticmethod
    def glob(value, pattern):
        value, pattern = (value or "").lower(), pattern.lower()
        if pattern.endswith("*"):
            return value.startswith(pattern[:-1])
        return value == pattern

    def search_projects(self, q, body, numeric):
        query = self.param(q, "query", default="")
        if len(query) > 2000:
            raise bad_request("The query is too long.", "query")
        tests = []
        for term in self.query_terms(query):
            if term.upper() in ("AND", "OR", "NOT") or term.startswith("-"):
                raise not_modelled("The query operator '%s'" % term[:20])
            m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)\s*(:|=)\s*(.*)$", term)
            if not m:
                raise bad_request("Invalid query '%s': expected field:value terms." % query[:200], "query")
            field, value = m.group(1), m.group(3)
            f = field.lower()
            if f in ("id", "projectid"):
                tests.append(lambda p, v=value: self.glob(p["projectId"], v))
            elif f in ("displayname", "name"):
                tests.append(lambda p, v=value: self.glob(p["displayName"], v))
            elif f == "parent":
                tests.append(lambda p, v=value: self.glob(p["parent"], v))
            elif f == "parent.type":
                tests.append(lambda p, v=value: self.glob((p["parent"] or "/").split("/")[0].rstrip("s"), v))
            elif f == "parent.id":
                tests.append(lambda p, v=value: self.glob((p["parent"] or "/").split("/")[1], v))
            elif f in ("state", "lifecyclestate"):
                tests.append(lambda p, v=value: self.glob(p["state"], v))
            elif f == "labels":
                tests.append(lambda p, v=value: any(self.glob(k, v) for k in p["labels"]))
            elif f.startswith("labels."):
                key = field[len("labels."):]
                tests.append(lambda p, k=key, v=value: k in p["labels"] and (v == "*" or self.glob(p["labels"][k], v)))
            else:
                raise bad_request("Invalid query: unknown field '%s'." % field[:50], "query")
        delay = int(self.config["search_delay_ms"]) / 1000.0
        now = time.monotonic()
        items = [p for p in self.projects.values() if not p["purged"] and now - p["created_mono"] >= delay
                 and (not tests or any(t(p) for t in tests))]
        items.sort(key=lambda p: p["seq"])
        page, nxt = self.page(items, q, ["search", query], 1000)
        out = {}
        if page:
            out["projects"] = [self.project_json(p, numeric) for p in page]
        if nxt:
            out["nextPageToken"] = nxt
        return Response(200, out)

    def update_project(self, key, q, body, numeric):
        p = self.project_or_403(key, "resourcemanager.projects.update")
        d = message(json_value(body), self.PROJECT_FIELDS, "project")
        mask = self.param(q, "updateMask")
        fields = [camel(f.strip()) for f in mask.split(",") if f.strip()] if mask else \
            [f for f in ("displayName", "labels") if f in d]
        for f in fields:
            if f not in ("displayName", "labels"):
                raise bad_request("Field '%s' cannot be updated: only display_name and labels." % f[:50],
                                  "update_mask")
        if p["state"] != "ACTIVE":
            raise ApiError(400, "Project '%s' is in state DELETE_REQUESTED and cannot be updated." % p["projectId"],
                           "FAILED_PRECONDITION")
        display = self.check_display_name(d.get("displayName"), "project.display_name") \
            if "displayName" in fields else None
        labels = self.check_labels(d.get("labels"), "project.labels") if "labels" in fields else None
        if "displayName" in fields:
            p["displayName"] = display
        if "labels" in fields:
            p["labels"] = labels
        if fields:
            self.touch(p)
        op = self.new_operation("up", T_OP_UPDATE, int(self.config["update_polls"]), p)
        return Response(200, self.operation_json(op))

    def delete_project(self, key, q, body, numeric):
        p = self.project_or_403(key, "resourcemanager.projects.delete")
        if p["state"] == "ACTIVE":
            if p["liens"]:
                lien = p["liens"][0]
                text = ("A lien to prevent deletion was placed on the project by [%s]. Remove the lien to allow "
                        "deletion." % lien["origin"])
                raise ApiError(400, text, "FAILED_PRECONDITION",
                               [{"@type": T_PRECONDITION, "violations": [
                                   {"type": "LIEN", "subject": lien["name"], "description": text}]},
                                {"@type": T_RESOURCEINFO, "resourceType": "cloudresourcemanager.googleapis.com/Project",
                                 "resourceName": "projects/" + p["number"]}])
            p["state"] = "DELETE_REQUESTED"
            p["deleteTime"] = time.time()
            self.touch(p)
        # deleting a DELETE_REQUESTED project is a no-op, not an error (P-CRM)
        op = self.new_operation("dp", T_OP_DELETE, int(self.config["delete_polls"]), p)
        return Response(200, self.operation_json(op))

    def undelete_project(self, key, q, body, numeric):
        p = self.project_or_403(key, "resourcemanager.projects.undelete")
        message(json_value(body, required=False), {"name"}, "")
        if p["state"] != "DELETE_REQUESTED":
            raise ApiError(400, "Project '%s' is not in state DELETE_REQUESTED." % p["projectId"],
                           "FAILED_PRECONDITION")
        p["state"] = "ACTIVE"
        p["deleteTime"] = None
        self.touch(p)
        op = self.new_operation("ud", T_OP_UNDELETE, int(self.config["undelete_polls"]), p)
        return Response(200, self.operation_json(op))

    # ---------------------------------------------------------------- IAM

    @staticmethod
    def policy_etag():
        # real etags are 8 bytes starting 0x07 ("BwWWja0YfJA=")
        return b"\x07" + secrets.token_bytes(7)

    @staticmethod
    def cond_key(c):
        return json.dumps(c, sort_keys=True) if c else ""

    def policy_json(self, p, requested=3, numeric=False):
        pol = p["policy"]
        has_cond = any(b.get("condition") for b in pol["bindings"])
        out = {"version": 3 if has_cond and requested == 3 else 1, "etag": base64.b64encode(pol["etag"]).decode()}
        bindings = []
        for b in sorted(pol["bindings"], key=lambda b: (b["role"], self.cond_key(b.get("condition")))):
            nb = {"role": b["role"], "members": sorted(b["members"])}
            if b.get("condition"):
                if requested == 3:
                    nb["condition"] = dict(b["condition"])
                else:
                    # a version-1 read of a conditional binding (unconfirmed detail: role suffix, no condition)
                    nb["role"] = "%s_withcond_%s" % (b["role"], hashlib.sha256(
                        self.cond_key(b["condition"]).encode()).hexdigest()[:20])
            bindings.append(nb)
        if bindings:
            out["bindings"] = bindings
        if pol["auditConfigs"]:
            acs = json.loads(json.dumps(pol["auditConfigs"]))
            if numeric:
                for ac in acs:
                    for lc in ac.get("auditLogConfigs", []):
                        if "logType" in lc:
                            lc["logType"] = LOG_TYPE_NUM[lc["logType"]]
            out["auditConfigs"] = acs
        return out

    def get_iam_policy(self, key, q, body, numeric):
        p = self.project_or_403(key, "resourcemanager.projects.getIamPolicy")
        d = message(json_value(body, required=False), {"resource", "options"}, "")
        opts = message(d.get("options") or {}, {"requestedPolicyVersion"}, "options")
        v = opts.get("requestedPolicyVersion", 0)
        if type(v) is str and v.isdigit():
            v = int(v)
        if v not in (0, 1, 3):
            raise bad_request("Invalid requested policy version %s: 0, 1 or 3." % str(v)[:20],
                              "options.requested_policy_version")
        return Response(200, self.policy_json(p, 3 if v == 3 else 1, numeric))

    def check_member(self, m, role):
        if not isinstance(m, str) or not m:
            raise bad_request("Members must be non-empty strings.", "policy.bindings.members")
        if m in ("allUsers", "allAuthenticatedUsers"):
            raise bad_request("Policy members of type %s are not supported for this resource." % m,
                              "policy.bindings.members")
        kind, _, rest = m.partition(":")
        if kind in ("user", "group", "serviceAccount") and EMAIL.match(rest):
            if kind == "serviceAccount" and not rest.lower().endswith(".gserviceaccount.com"):
                raise bad_request("Invalid service account (%s)." % rest[:100], "policy.bindings.members")
            return kind
        if kind == "domain" and DOMAIN.match(rest):
            return kind
        if kind == "deleted":
            dm = re.match(r"^(user|group|serviceAccount):([^?]+)\?uid=([0-9]+)$", rest)
            if dm and EMAIL.match(dm.group(2)):
                return "deleted"
        if kind in ("principal", "principalSet"):
            raise not_modelled("Member '%s' (workforce/workload identity)" % m[:100])
        raise bad_request("Invalid member '%s' in role %s: expected user:, group:, serviceAccount:, domain: or "
                          "deleted: with an email address (or domain)." % (m[:100], role[:100]),
                          "policy.bindings.members")

    def check_role(self, role, p):
        if not isinstance(role, str) or not role:
            raise bad_request("A binding needs a role.", "policy.bindings.role")
        if "_withcond_" in role:
            raise bad_request("Role %s names a conditional binding read at version 1; read the policy with "
                              "requested_policy_version 3." % role[:100], "policy.bindings.role")
        if role in BASIC_ROLES or PREDEFINED_ROLE.match(role):
            return
        m = CUSTOM_ROLE.match(role)
        if m:
            scope = m.group(1)
            if scope.startswith("projects/") and scope[len("projects/"):] not in (p["projectId"], p["number"]):
                raise bad_request("Role (%s) does not exist in the resource's hierarchy." % role[:100],
                                  "policy.bindings.role")
            return
        raise bad_request("Role %s is not supported for this resource." % role[:100], "policy.bindings.role")

    def check_condition(self, c):
        if c is None:
            return None
        c = message(c, {"title", "description", "expression", "location"}, "policy.bindings.condition")
        for k, v in c.items():
            expect_type(v, str, "policy.bindings.condition." + k, "a string")
        if not c.get("expression"):
            raise bad_request("A condition needs an expression.", "policy.bindings.condition.expression")
        if not c.get("title"):
            raise bad_request("A condition needs a title.", "policy.bindings.condition.title")
        return {k: v for k, v in c.items() if v}

    def set_iam_policy(self, key, q, body, numeric):
        p = self.project_or_403(key, "resourcemanager.projects.setIamPolicy")
        d = message(json_value(body), {"resource", "policy", "updateMask"}, "")
        if not isinstance(d.get("policy"), dict):
            raise bad_request("Field 'policy' is required.", "policy")
        mask = expect_type(d.get("updateMask"), str, "update_mask", "a comma-separated string")
        fields = {camel(f.strip()) for f in (mask or "bindings,etag").split(",") if f.strip()}
        if fields - {"bindings", "etag", "auditConfigs", "version"}:
            raise bad_request("Invalid update_mask %s: bindings, etag, audit_configs." % mask[:100], "update_mask")
        pol = message(d["policy"], {"version", "bindings", "etag", "auditConfigs"}, "policy")
        version = pol.get("version", 0)
        if type(version) is not int or version not in (0, 1, 3):
            raise bad_request("Invalid policy version %s: 0, 1 or 3." % str(version)[:20], "policy.version")
        bindings = pol.get("bindings") or []
        if not isinstance(bindings, list):
            raise bad_request("Invalid value at 'policy.bindings': expected a list.", "policy.bindings")
        merged = {}
        principals, groups = set(), set()
        old_owner_users = {m for b in p["policy"]["bindings"] if b["role"] == "roles/owner" for m in b["members"]}
        for b in bindings:
            b = message(b, {"role", "members", "condition"}, "policy.bindings")
            role = b.get("role")
            self.check_role(role, p)
            members = b.get("members")
            if not isinstance(members, list) or not members:
                raise bad_request("A binding must have at least one member (role %s)." % role[:100],
                                  "policy.bindings.members")
            cond = self.check_condition(b.get("condition"))
            if cond and version != 3:
                raise bad_request("Conditional role bindings need policy version 3.", "policy.version")
            for m in members:
                kind = self.check_member(m, role)
                principals.add(m)
                if kind == "group":
                    groups.add(m)
                if (role == "roles/owner" and kind == "user" and self.config["refuse_user_owner"]
                        and m not in old_owner_users):
                    raise ApiError(400, "Request contains an invalid argument.", "INVALID_ARGUMENT",
                                   [{"@type": "type.googleapis.com/google.cloudresourcemanager.v1."
                                              "ProjectIamPolicyError",
                                     "type": "SOLO_MUST_INVITE_OWNERS", "member": m, "role": "roles/owner"}])
            k = (role, self.cond_key(cond))
            entry = merged.setdefault(k, {"role": role, "members": [], "condition": cond})
            for m in members:
                if m not in entry["members"]:
                    entry["members"].append(m)
        if len(principals) > MAX_PRINCIPALS:
            raise bad_request("The policy has %d principals; at most %d are allowed." % (len(principals),
                                                                                         MAX_PRINCIPALS), "policy")
        if len(groups) > MAX_GROUP_PRINCIPALS:
            raise bad_request("The policy has %d groups; at most %d are allowed." % (len(groups),
                                                                                     MAX_GROUP_PRINCIPALS), "policy")
        had_cond = any(b.get("condition") for b in p["policy"]["bindings"])
        if had_cond and version != 3 and "bindings" in fields:
            raise bad_request("The policy has conditional role bindings: set it with policy version 3.",
                              "policy.version")
        audit = None
        if "auditConfigs" in fields:
            audit = self.check_audit(pol.get("auditConfigs") or [])
        if p["state"] != "ACTIVE":
            raise ApiError(400, "Project '%s' is in state DELETE_REQUESTED." % p["projectId"], "FAILED_PRECONDITION")
        etag = pol.get("etag")
        if etag and "etag" in fields:
            try:
                given = base64.b64decode(expect_type(etag, str, "policy.etag", "base64 bytes"), validate=True)
            except (binascii.Error, ValueError):
                raise bad_request("Invalid value at 'policy.etag' (TYPE_BYTES), Base64 decoding failed for \"%s\""
                                  % str(etag)[:60], "policy.etag")
            if given != p["policy"]["etag"]:
                raise ApiError(409, "%s The request's ETag '%s' did not match the current policy's ETag '%s'."
                               % (MSG_CONCURRENT, etag, base64.b64encode(p["policy"]["etag"]).decode()),
                               "ABORTED")
        if "bindings" in fields:
            p["policy"]["bindings"] = list(merged.values())
        if audit is not None:
            p["policy"]["auditConfigs"] = audit
        p["policy"]["etag"] = self.policy_etag()
        return Response(200, self.policy_json(p, 3, numeric))

    def check_audit(self, acs):
        if not isinstance(acs, list):
            raise bad_request("Invalid value at 'policy.audit_configs': expected a list.", "policy.audit_configs")
        out = []
        for ac in acs:
            ac = message(ac, {"service", "auditLogConfigs"}, "policy.audit_configs")
            svc = expect_type(ac.get("service"), str, "policy.audit_configs.service", "a string")
            if not svc:
                raise bad_request("An audit config needs a service.", "policy.audit_configs.service")
            lcs = []
            for lc in ac.get("auditLogConfigs") or []:
                lc = message(lc, {"logType", "exemptedMembers"}, "policy.audit_configs.audit_log_configs")
                lt = lc.get("logType")
                if isinstance(lt, int) and not isinstance(lt, bool):
                    lt = {v: k for k, v in LOG_TYPE_NUM.items()}.get(lt)
                if lt not in LOG_TYPE_NUM or lt == "LOG_TYPE_UNSPECIFIED":
                    raise bad_request("Invalid log type.", "policy.audit_configs.audit_log_configs.log_type")
                ex = lc.get("exemptedMembers") or []
                if not isinstance(ex, list):
                    raise bad_request("exempted_members must be a list.", "policy.audit_configs")
                for m in ex:
                    self.check_member(m, "audit config")
                nl = {"logType": lt}
                if ex:
                    nl["exemptedMembers"] = list(ex)
                lcs.append(nl)
            nac = {"service": svc}
            if lcs:
                nac["auditLogConfigs"] = lcs
            out.append(nac)
        return out

    def test_permissions(self, key, q, body, numeric):
        self.project_or_403(key, "resourcemanager.projects.get")
        d = message(json_value(body, required=False), {"resource", "permissions"}, "")
        perms = d.get("permissions") or []
        if not isinstance(perms, list) or not all(isinstance(x, str) for x in perms):
            raise bad_request("permissions must be a list of strings.", "permissions")
        for x in perms:
            if not re.match(r"^[a-z][a-zA-Z0-9]*\.[a-zA-Z0-9]+\.[a-zA-Z0-9]+$", x) or "*" in x:
                raise bad_request("Permission %s is not valid." % x[:100], "permissions")
        # the caller is owner of every project the fake holds: it has every permission asked for
        out = {"permissions": perms} if perms else {}
        return Response(200, out)

    # ---------------------------------------------------------------- Cloud Asset

    def project_asset(self, p):
        r = {"name": "//cloudresourcemanager.googleapis.com/projects/" + p["number"],
             "assetType": "cloudresourcemanager.googleapis.com/Project", "project": "projects/" + p["number"],
             "displayName": p["displayName"] or p["projectId"], "location": "global", "labels": dict(p["labels"]),
             "createTime": ts(p["createTime"]), "updateTime": ts(p["updateTime"]), "state": p["state"],
             "additionalAttributes": {"projectId": p["projectId"]}}
        self.add_ancestry(r, p, parent_is_project=False)
        return r

    def add_ancestry(self, r, p, parent_is_project=True):
        folders, org, c = [], None, p["parent"]
        seen = set()
        while c and c not in seen:
            seen.add(c)
            if c.startswith("folders/"):
                folders.append(c)
            else:
                org = c
            c = (self.folders.get(c) or {}).get("parent")
        if folders:
            r["folders"] = folders
        if org:
            r["organization"] = org
        if parent_is_project:
            r["parentFullResourceName"] = "//cloudresourcemanager.googleapis.com/projects/" + p["number"]
            r["parentAssetType"] = "cloudresourcemanager.googleapis.com/Project"
        elif p["parent"]:
            r["parentFullResourceName"] = "//cloudresourcemanager.googleapis.com/" + p["parent"]
            r["parentAssetType"] = "cloudresourcemanager.googleapis.com/" + (
                "Folder" if p["parent"].startswith("folders/") else "Organization")

    def resource_result(self, p, res):
        r = {k: v for k, v in res.items() if k in RESULT_FIELDS and v not in (None, "", [], {})}
        r["project"] = "projects/" + p["number"]
        self.add_ancestry(r, p)
        return r

    def asset_query(self, query):
        tests = []
        terms = self.query_terms(query)
        neg = False
        for term in terms:
            if term == "AND":
                continue
            if term == "OR":
                raise not_modelled("The query operator OR")
            if term == "NOT":
                neg = not neg
                continue
            m = re.match(r"^([A-Za-z][A-Za-z0-9_.]*)(:|=)(.*)$", term)
            if m:
                field, op, value = m.group(1), m.group(2), m.group(3)
                f = camel(field) if not field.startswith("labels.") else field
                if f.startswith("labels."):
                    k = field[len("labels."):]
                    t = (lambda r, k=k, v=value, op=op: k in (r.get("labels") or {}) and
                         (v == "*" or (r["labels"][k] == v if op == "=" else v.lower() in r["labels"][k].lower())))
                elif f == "labels":
                    t = (lambda r, v=value: any(v.lower() in (k + " " + x).lower()
                                                for k, x in (r.get("labels") or {}).items()))
                elif f in ("name", "displayName", "description", "location", "state", "assetType", "project",
                           "parentFullResourceName", "parentAssetType", "folders", "organization"):
                    def t(r, f=f, v=value, op=op):
                        got = r.get(f)
                        vals = got if isinstance(got, list) else [got or ""]
                        if op == "=":
                            return any(x == v for x in vals)
                        return v == "*" and any(vals) or any(v.lower() in x.lower() for x in vals)
                elif f in ("createTime", "updateTime"):
                    raise not_modelled("Time comparisons in the query")
                else:
                    raise bad_request("Invalid query: unknown field '%s'." % field[:50], "query")
            elif re.match(r"^[A-Za-z][A-Za-z0-9_.]*(<|>|<=|>=)", term):
                raise not_modelled("Comparisons in the query")
            else:
                def t(r, v=term):
                    hay = " ".join([r.get("name", ""), r.get("displayName", ""), r.get("description", ""),
                                    r.get("location", "")] + ["%s %s" % kv for kv in (r.get("labels") or {}).items()])
                    return v.lower() in hay.lower()
            tests.append((lambda r, t=t, n=neg: t(r) != n))
            neg = False
        return tests

    def search_all_resources(self, scope, q, body, numeric):
        kind, _, key = scope.partition("/")
        if kind == "projects":
            p = self.find_project(key)
            if p is None:
                raise denied("//cloudresourcemanager.googleapis.com/projects/%s" % key[:100],
                             "cloudasset.assets.searchAllResources")
            projects = [p]
        else:
            if scope not in self.folders:
                raise denied("//cloudresourcemanager.googleapis.com/%s" % scope[:100],
                             "cloudasset.assets.searchAllResources")
            projects = []
            for p in sorted(self.projects.values(), key=lambda p: p["seq"]):
                anc = {}
                self.add_ancestry(anc, p)
                if not p["purged"] and scope in anc.get("folders", []) + [anc.get("organization")]:
                    projects.append(p)
        query = self.param(q, "query", default="")
        if len(query) > 2000:
            raise bad_request("The query is too long.", "query")
        tests = self.asset_query(query)
        types = q.get("assetTypes") or []
        regexes = []
        known = set(KNOWN_ASSET_TYPES)
        for p in projects:
            known.update(r["assetType"] for r in p["resources"])
        for t in types:
            if len(t) > 200:
                raise bad_request("asset_types entry too long.", "asset_types")
            try:
                rx = re.compile(t)
            except re.error:
                raise bad_request("Invalid asset_types regular expression '%s'." % t[:100], "asset_types")
            if not any(rx.fullmatch(k) for k in known):
                raise bad_request("Asset type '%s' is not supported, or the regular expression matches no "
                                  "supported asset type." % t[:100], "asset_types")
            regexes.append(rx)
        order = self.param(q, "orderBy", default="")
        keys = []
        for part in [x.strip() for x in order.split(",") if x.strip()]:
            bits = part.split()
            f = camel(bits[0])
            if f not in ORDERABLE or len(bits) > 2 or len(bits) == 2 and bits[1].lower() not in ("asc", "desc"):
                raise bad_request("Invalid order_by '%s'." % part[:100], "order_by")
            keys.append((f, len(bits) == 2 and bits[1].lower() == "desc"))
        mask = self.param(q, "readMask", default="")
        fields = None
        if mask and mask.strip() != "*":
            fields = set()
            for f in mask.split(","):
                c = camel(f.strip())
                if c not in RESULT_FIELDS:
                    raise bad_request("Invalid read_mask field '%s'." % f[:50], "read_mask")
                fields.add(c)
        results = []
        for p in projects:
            results.append(self.project_asset(p))
            results.extend(self.resource_result(p, r) for r in p["resources"])
        results = [r for r in results if (not regexes or any(rx.fullmatch(r["assetType"]) for rx in regexes))
                   and all(t(r) for t in tests)]
        for f, desc in reversed(keys):
            results.sort(key=lambda r: str(r.get(f) or ""), reverse=desc)
        page, nxt = self.page(results, q, ["assets", scope, query, types, order, mask], 500)
        if fields is not None:
            page = [{k: v for k, v in r.items() if k in fields} for r in page]
        out = {}
        if page:
            out["results"] = page
        if nxt:
            out["nextPageToken"] = nxt
        return Response(200, out)

    # ---------------------------------------------------------------- control API

    def control(self, method, path, q, body):
        p = path.rstrip("/")
        if p == "/_fake/state" and method == "GET":
            return Response(200, self.state())
        if method != "POST":
            raise ApiError(405, "Use POST (GET for /_fake/state).", "INVALID_ARGUMENT")
        if p == "/_fake/reset":
            self.reset()
            return Response(200, self.state())
        data = json.loads(body.decode("utf-8")) if body and body.strip() else {}
        if p == "/_fake/faults":
            items = data if isinstance(data, list) else data.get("faults", [data]) if isinstance(data, dict) else None
            if items is None:
                raise bad_request("send a fault object, a list, or {\"faults\": [...]}")
            return Response(200, {"faults": self.add_faults(items)})
        many = data if isinstance(data, list) else [data]
        if not all(isinstance(x, dict) for x in many) or len(many) > 1000:
            raise bad_request("send a JSON object or a list of at most 1000 objects")
        with self.lock:
            if p == "/_fake/folders":
                return Response(200, {"folders": [self.add_container(x) for x in many]})
            if p == "/_fake/resources":
                return Response(200, {"resources": [self.seed_resource(x) for x in many]})
            if p == "/_fake/liens":
                return Response(200, {"liens": [self.seed_lien(x) for x in many]})
            if p == "/_fake/foreign-ids":
                for x in many:
                    pid = x.get("projectId")
                    if not isinstance(pid, str) or not PROJECT_ID.match(pid):
                        raise bad_request("projectId must be a valid project ID")
                    if pid in self.by_id:
                        raise bad_request("project ID %s is one of the fake's own projects" % pid)
                    self.foreign.add(pid)
                return Response(200, {"foreignIds": sorted(self.foreign)})
            if p == "/_fake/purge":
                return Response(200, {"purged": [self.purge(x) for x in many]})
            if isinstance(data, list):
                raise bad_request("send a JSON object")
            if p == "/_fake/limits":
                return Response(200, self.set_limits(data))
            if p == "/_fake/config":
                return Response(200, {"config": self.set_config(data)})
        raise ApiError(404, "No such control endpoint: %s %s" % (method, p[:100]), "NOT_FOUND")

    def control_project(self, d):
        key = d.get("project")
        if not isinstance(key, str) or not key:
            raise bad_request("project (ID, number or projects/...) is required")
        p = self.find_project(key)
        if p is None:
            raise ApiError(404, "no project %s in the fake" % key[:100], "NOT_FOUND")
        return p

    def seed_resource(self, d):
        unknown = set(d) - {"project", "assetType", "name", "displayName", "description", "location", "labels",
                            "state", "createTime", "additionalAttributes", "remove"}
        if unknown:
            raise bad_request("unknown fields: %s" % ", ".join(sorted(unknown)))
        p = self.control_project(d)
        name = d.get("name")
        if name is not None and (not isinstance(name, str) or not name.startswith("//") or len(name) > 1000):
            raise bad_request("name must be a full resource name (//service.googleapis.com/...)")
        if d.get("remove"):
            before = len(p["resources"])
            p["resources"] = [r for r in p["resources"] if name is not None and r["name"] != name]
            return {"project": p["projectId"], "removed": before - len(p["resources"]),
                    "resources": [r["name"] for r in p["resources"]]}
        at = d.get("assetType")
        if not isinstance(at, str) or not ASSET_TYPE.match(at):
            raise bad_request("assetType must look like service.googleapis.com/Kind")
        if sum(len(x["resources"]) for x in self.projects.values()) >= MAX_RESOURCES:
            raise bad_request("at most %d resources may be seeded" % MAX_RESOURCES)
        service, kind = at.split("/")
        seq = self.next_seq()
        if name is None:
            name = "//%s/projects/%s/%ss/%s-%d" % (service, p["projectId"], kind[0].lower() + kind[1:],
                                                    kind.lower(), seq)
        for k in ("displayName", "description", "location", "state", "createTime"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise bad_request("%s must be a string" % k)
        labels = d.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in labels.items()):
            raise bad_request("labels must map strings to strings")
        attrs = d.get("additionalAttributes")
        if attrs is not None and not isinstance(attrs, dict):
            raise bad_request("additionalAttributes must be an object")
        now = ts()
        r = {"name": name, "assetType": at, "displayName": d.get("displayName") or name.rsplit("/", 1)[-1],
             "description": d.get("description"), "location": d.get("location") or "global", "labels": labels,
             "state": d.get("state") or ("ACTIVE" if service != "storage.googleapis.com" else None),
             "createTime": d.get("createTime") or now, "updateTime": now, "additionalAttributes": attrs}
        p["resources"] = [x for x in p["resources"] if x["name"] != name] + [r]
        return dict(self.resource_result(p, r))

    def seed_lien(self, d):
        unknown = set(d) - {"project", "origin", "reason", "remove"}
        if unknown:
            raise bad_request("unknown fields: %s" % ", ".join(sorted(unknown)))
        p = self.control_project(d)
        if d.get("remove"):
            p["liens"] = []
            return {"project": p["projectId"], "liens": []}
        origin = d.get("origin") or "canopy-fake.example"
        reason = d.get("reason") or "held by a test"
        if not isinstance(origin, str) or not isinstance(reason, str):
            raise bad_request("origin and reason must be strings")
        p["liens"].append({"name": "liens/p%s-%s" % (p["number"], secrets.token_hex(8)), "origin": origin,
                           "reason": reason})
        return {"project": p["projectId"], "liens": list(p["liens"])}

    def purge(self, d):
        p = self.control_project(d)
        if p["state"] != "DELETE_REQUESTED":
            raise bad_request("only a DELETE_REQUESTED project can be purged")
        p["purged"] = True
        return p["projectId"]

    def set_limits(self, d):
        unknown = set(d) - {"enabled", "retry_after"} - set(DEFAULT_LIMITS)
        if unknown:
            raise bad_request("unknown limits fields: %s" % ", ".join(sorted(unknown)))
        for k in ("enabled", "retry_after"):
            if k in d and not isinstance(d[k], bool):
                raise bad_request("%s must be a boolean" % k)
        for group in DEFAULT_LIMITS:
            if group in d:
                v = d[group]
                if not isinstance(v, dict) or set(v) - {"per_second", "per_minute"}:
                    raise bad_request("%s must be {per_second, per_minute}" % group)
                for k, x in v.items():
                    if not isinstance(x, (int, float)) or isinstance(x, bool) or x < 0 or x > 1e6:
                        raise bad_request("%s.%s must be a number >= 0 (0: no such window)" % (group, k))
                merged = dict(self.limits[group], **v)
                if not merged["per_second"] and not merged["per_minute"]:
                    raise bad_request("%s needs a per_second or a per_minute rate" % group)
        if "enabled" in d:
            self.limits_enabled = d["enabled"]
        if "retry_after" in d:
            self.limits_retry_after = d["retry_after"]
        for group in DEFAULT_LIMITS:
            if group in d:
                self.limits[group].update(d[group])
        self.buckets = {}
        self.spent = {}
        return {"enabled": self.limits_enabled, "retry_after": self.limits_retry_after, **self.limits}

    def set_config(self, d):
        for k, v in d.items():
            if k not in DEFAULT_CONFIG:
                raise bad_request("unknown config key %s" % k[:50])
            if k == "refuse_user_owner":
                if not isinstance(v, bool):
                    raise bad_request("refuse_user_owner must be a boolean")
            elif k == "project_quota" and v is None:
                pass
            elif type(v) is not int or v < (1 if k in ("page_size", "token_lifetime") else 0) or \
                    v > (86400 if k == "token_lifetime" else 600_000 if k == "search_delay_ms" else 100_000):
                raise bad_request("%s must be an integer in range" % k)
        self.config.update(d)
        return dict(self.config)

    def state(self):
        with self.lock:
            projects = []
            for p in sorted(self.projects.values(), key=lambda p: p["seq"]):
                j = self.project_json(p)
                j.update(purged=p["purged"], iamPolicy=self.policy_json(p), liens=list(p["liens"]),
                         resources=[r["name"] for r in p["resources"]])
                projects.append(j)
            return {
                "serviceAccount": self.key["client_email"], "tokenUri": self.token_uri,
                "folder": self.default_folder,
                "folders": [dict(f) for f in self.folders.values()],
                "config": dict(self.config),
                "limits": {"enabled": self.limits_enabled, "retry_after": self.limits_retry_after, **self.limits},
                "quota": self.quota(),
                "projects": projects,
                "foreignIds": sorted(self.foreign),
                "operations": [{"name": o["name"], "done": o["done"], "type": o["metaType"].rsplit(".", 1)[-1],
                                "project": o["project"], "error": o["error"]}
                               for o in sorted(self.operations.values(), key=lambda o: o["seq"])][-200:],
                "faults": [dict(f) for f in self.faults],
                "requests": json.loads(json.dumps(self.counts)),
            }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def version_string(self):
        return "gcp-fake"

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
                    raise bad_request("bad chunked encoding")
                if size == 0:
                    for _ in range(100):
                        if self.rfile.readline(1024) in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "The request body exceeds 1 MiB.", "INVALID_ARGUMENT")
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    self.close_connection = True
                    raise bad_request("truncated chunk")
                chunks.append(chunk)
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
            raise bad_request("Content-Length is not valid.")
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "The request body exceeds 1 MiB.", "INVALID_ARGUMENT")
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise bad_request("The request body is shorter than Content-Length.")
        return data

    def handle_method(self):
        fake = self.server.fake
        kind = None
        try:
            split = urllib.parse.urlsplit(self.path)
            raw_path, query = split.path or "/", split.query
            path = urllib.parse.unquote(raw_path)
            body = self.read_body()
            if path == "/_fake" or path.startswith("/_fake/"):
                kind = "control"
                if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                    raise ApiError(403, "The control API answers loopback clients only.")
                try:
                    resp = fake.control(self.command, path, query, body)
                except (ValueError, UnicodeDecodeError) as e:
                    raise bad_request("The control request is not valid JSON: %s" % str(e)[:200])
            else:
                kind = "token" if path == "/token" else None
                resp = fake.serve(self.command, raw_path, query, self.headers, body)
        except ApiError as e:
            resp = fake.error_response(kind, e)
        except Exception:
            traceback.print_exc()
            resp = fake.error_response(kind, ApiError(500, "Internal error encountered (the Google Cloud fake "
                                                           "failed; see its log)."))
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
            payload = json.dumps(resp.body, indent=2).encode("utf-8")
        self.send_response(resp.status)
        if resp.body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "private")
        self.send_header("Vary", "Origin, X-Origin, Referer")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        # malformed request lines/headers: a Google-shaped JSON error instead of HTML
        self.close_connection = True
        try:
            body = json.dumps({"error": {"code": code, "message": "%d %s" % (code, message or ""),
                                         "status": HTTP_STATUS.get(code, "INVALID_ARGUMENT" if code < 500
                                                                   else "INTERNAL")}}).encode()
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
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
    return fake_tls.make_certs(directory, "Canopy Google Cloud fake test CA")


def make_key(directory, token_uri):
    """A service-account key file like Google's (PKCS#8 RSA 2048), its token_uri on the fake."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(20)
    info = {
        "type": "service_account",
        "project_id": SA_PROJECT,
        "private_key_id": kid,
        "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": SA_EMAIL,
        "client_id": str(random.randint(10 ** 20, 10 ** 21 - 1)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" +
                                urllib.parse.quote(SA_EMAIL, safe=""),
        "universe_domain": "googleapis.com",
    }
    path = os.path.join(directory, "key.json")
    with open(path + ".tmp", "w") as f:
        os.chmod(f.name, 0o600)
        json.dump(info, f, indent=2)
    os.replace(path + ".tmp", path)
    return {"private_key_id": kid, "client_email": SA_EMAIL, "public_key": key.public_key()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="instance directory (certificates and key.json go here)")
    parser.add_argument("--folder", default="folders/1234567890", help="the folder the fake knows at start")
    args = parser.parse_args()
    if not PARENT.match(args.folder):
        parser.error("--folder must be folders/N or organizations/N")
    base = "https://127.0.0.1:%d" % args.port
    paths = make_certs(args.dir)
    key = make_key(args.dir, base + "/token")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server.pem"], paths["server-key.pem"])
    fake = Fake(base, key, args.folder)
    server = Server(("127.0.0.1", args.port), fake, ctx)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    sys.stderr.write("gcp fake serving %s (service account %s, folder %s)\n" % (base, SA_EMAIL, args.folder))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
