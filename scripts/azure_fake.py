"""A test fixture: a stateful, in-memory fake of the Azure APIs the Azure adapter uses
(Microsoft identity platform client credentials, ARM subscription aliases, role
definitions and assignments, resources, Microsoft Graph users). Not for any other use.

Run by scripts/azure: python3 azure_fake.py --port PORT --dir DIR --tenant TENANT
--client-id CLIENT_ID, with the client secret in AZURE_FAKE_CLIENT_SECRET. Serves HTTPS
on 127.0.0.1 only, with a CA and server certificate made at start (DIR/ca.pem,
DIR/server.pem, DIR/server-key.pem). Behaviour and sources: docs/platforms/azure-api.md;
the control API for tests (/_fake/...) is described in scripts/azure.
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

import fake_tls  # scripts/fake_tls.py, beside this file
from fake_tls import TlsServer

MAX_BODY = 1 << 20          # request bodies above 1 MiB are refused (413)
MAX_THREADS = 64            # connections served at once; more are closed at accept
IDLE_TIMEOUT = 30           # seconds a connection may sit idle (keep-alive) or stall
MAX_DELAY_MS = 120_000      # upper bound of a fault's delay_ms
MAX_FAULTS = 1000
MAX_TOKENS = 10_000
TOKEN_LIFETIME = 3599

ARM = "arm"
GRAPH = "graph"
# token audience of each accepted `<resource>/.default` scope (resource without trailing /)
RESOURCES = {
    "https://management.azure.com": ARM,
    "https://management.core.windows.net": ARM,
    "https://graph.microsoft.com": GRAPH,
}

API_SUBSCRIPTION = {"2021-10-01"}                   # aliases, cancel
API_SUBSCRIPTIONS_GET = {"2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01"}
API_AUTHORIZATION = {"2022-04-01"}
API_RESOURCES = {"2021-04-01"}

# Built-in roles (ids: learn.microsoft.com, Azure built-in roles, "General"/"Privileged")
BUILTIN_ROLES = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
     "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
     {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
     "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
     "manage assignments in Azure Blueprints, or share image galleries.",
     {"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                                       "Microsoft.Authorization/elevateAccess/Action",
                                       "Microsoft.Blueprint/blueprintAssignments/write",
                                       "Microsoft.Blueprint/blueprintAssignments/delete",
                                       "Microsoft.Compute/galleries/share/action"],
      "dataActions": [], "notDataActions": []}),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
     "View all resources, but does not allow you to make any changes.",
     {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}),
    ("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
     "Lets you manage user access to Azure resources.",
     {"actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], "notActions": [],
      "dataActions": [], "notDataActions": []}),
]
OWNER_ROLE = BUILTIN_ROLES[0][0]

DEFAULT_BILLING_SCOPE = ("/providers/Microsoft.Billing/billingAccounts/canopy-test-account"
                         "/billingProfiles/canopy-test-profile/invoiceSections/canopy-test-section")
BILLING_PATTERNS = [
    re.compile(r"^/billingaccounts/[^/]+/billingprofiles/[^/]+/invoicesections/[^/]+$"),
    re.compile(r"^/billingaccounts/[^/]+/customers/[^/]+$"),
    re.compile(r"^/billingaccounts/[^/]+/enrollmentaccounts/[^/]+$"),
]

# published ARM token-bucket limits (per subscription/tenant, per principal, per kind)
DEFAULT_LIMITS = {"reads": {"capacity": 250, "per_second": 25},
                  "writes": {"capacity": 200, "per_second": 10},
                  "deletes": {"capacity": 200, "per_second": 10}}
DEFAULT_CONFIG = {"page_size": 100, "alias_polls": 1, "alias_retry_after": 1, "alias_polling": "body"}

USER_PROPERTIES = ["id", "userPrincipalName", "mail", "displayName", "givenName", "surname", "jobTitle",
                   "mobilePhone", "officeLocation", "preferredLanguage", "businessPhones", "accountEnabled",
                   "userType", "mailNickname", "otherMails"]
USER_DEFAULT_SELECT = ["businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                       "officeLocation", "preferredLanguage", "surname", "userPrincipalName"]

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def is_guid(s):
    return isinstance(s, str) and bool(GUID.match(s))


class ApiError(Exception):
    """An error answer. For the token endpoint `code` is the OAuth `error` and `aadsts` its number."""

    def __init__(self, status, code, message, headers=None, aadsts=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.aadsts = aadsts


class Response:
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self.lost = False


def json_body(body):
    if not body:
        raise ApiError(400, "InvalidRequestContent", "The request content was invalid: it is empty.")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "InvalidRequestContent", "The request content was invalid and could not be "
                       "deserialized: %s" % str(e)[:200])
    if not isinstance(value, dict):
        raise ApiError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return value


def opt_str(d, key, where):
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise ApiError(400, "InvalidRequestContent", "'%s%s' must be a string." % (where, key))
    return v


class Bucket:
    def __init__(self, capacity, per_second):
        self.capacity, self.rate = float(capacity), float(per_second)
        self.tokens, self.last = float(capacity), time.monotonic()

    def take(self):
        """(allowed, remaining, retry_after_seconds)"""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0
        wait = (1 - self.tokens) / self.rate if self.rate > 0 else 60
        return False, 0, max(1, math.ceil(wait))


class Fake:
    def __init__(self, tenant, client_id, client_secret, base_url):
        self.tenant, self.client_id, self.client_secret = tenant.lower(), client_id, client_secret
        self.base = base_url
        # object id of the application's service principal (the caller of every ARM call)
        self.sp_object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-azure-fake-sp:" + client_id))
        self.lock = threading.RLock()
        self.tokens = {}  # access token -> {"audience", "expires", "client_id"}
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self):
        with self.lock:
            self.config = dict(DEFAULT_CONFIG)
            self.limits_enabled = False
            self.limits = json.loads(json.dumps(DEFAULT_LIMITS))
            self.buckets = {}
            self.spent = {}         # bucket key -> requests it took while limits were on (for the bench)
            self.billing_scopes = {self.norm_billing(DEFAULT_BILLING_SCOPE): DEFAULT_BILLING_SCOPE}
            self.aliases = {}         # lower name -> alias
            self.subscriptions = {}   # id -> subscription
            self.assignments = {}     # (subscription id, lower name) -> assignment
            self.custom_roles = {}    # guid -> role
            self.users = {}           # lower id -> user (kind User|Group|ServicePrincipal)
            self.faults = []
            self.counts = {"total": 0, "arm": 0, "graph": 0, "token": 0, "throttled": 0, "lost": 0,
                           "faults_applied": 0}
            self.seq = 0

    def next_seq(self):
        self.seq += 1
        return self.seq

    # ---------------------------------------------------------------- entry

    def serve(self, method, raw_path, query, headers, body, kind):
        """Answers one non-control request (kind: token, arm, graph)."""
        with self.lock:
            self.counts["total"] += 1
            self.counts[kind] += 1
            fault = self.take_fault(method, raw_path, query)
        rl = None
        try:
            if fault and fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000.0)
            path = urllib.parse.unquote(raw_path)
            q = {}
            for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
                q[k.lower()] = v
            if kind == ARM:
                rl = self.ratelimit_header(method, path)
            if fault and fault.get("status"):
                st = fault["status"]
                hdrs = {}
                if fault.get("retry_after") is not None:
                    hdrs["Retry-After"] = str(fault["retry_after"])
                code = fault.get("code") or {429: "TooManyRequests", 500: "InternalServerError",
                                             503: "ServiceUnavailable"}[st]
                msg = fault.get("message") or "Injected fault (%d) from the Azure fake." % st
                if kind == "token":
                    code = fault.get("code") or "temporarily_unavailable"
                raise ApiError(st, code, msg, headers=hdrs, aadsts=50000 if kind == "token" else None)
            if kind == "token":
                resp = self.token_api(method, path, body)
            elif kind == GRAPH:
                caller = self.authenticate(headers, GRAPH)
                resp = self.graph(method, path, q, caller)
            else:
                caller = self.authenticate(headers, ARM)
                rl = self.limit(method, path, caller)
                resp = self.arm(method, path, q, body, caller)
        except ApiError as e:
            resp = self.error_response(kind, e, headers)
        if rl:
            resp.headers.setdefault(rl[0], str(rl[1]))
        if resp.status == 429:
            with self.lock:
                self.counts["throttled"] += 1
        if fault and fault.get("lost"):
            resp.lost = True
            with self.lock:
                self.counts["lost"] += 1
        if kind == ARM:
            resp.headers.setdefault("x-ms-correlation-request-id",
                                    headers.get("x-ms-correlation-request-id") or str(uuid.uuid4()))
            resp.headers.setdefault("x-ms-routing-request-id", "LOCAL:%s:%s" % (
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), uuid.uuid4()))
        return resp

    def error_response(self, kind, e, headers):
        if kind == "token":
            body = {"error": e.code, "error_description": "AADSTS%d: %s" % (e.aadsts or 90000, e.message),
                    "error_codes": [e.aadsts or 90000], "timestamp": now_iso()[:19] + "Z",
                    "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}
        elif kind == GRAPH:
            body = {"error": {"code": e.code, "message": e.message, "innerError": {
                "date": now_iso()[:19], "request-id": str(uuid.uuid4()),
                "client-request-id": headers.get("client-request-id") or str(uuid.uuid4())}}}
        else:
            body = {"error": {"code": e.code, "message": e.message}}
        return Response(e.status, body, e.headers)

    # ---------------------------------------------------------------- faults

    def add_faults(self, items):
        added = []
        for f in items:
            if not isinstance(f, dict):
                raise ApiError(400, "InvalidFault", "each fault must be a JSON object")
            unknown = set(f) - {"path_contains", "method", "status", "retry_after", "lost", "delay_ms", "times",
                                "code", "message"}
            if unknown:
                raise ApiError(400, "InvalidFault", "unknown fault fields: %s" % ", ".join(sorted(unknown)))
            pc = f.get("path_contains", "")
            if not isinstance(pc, str):
                raise ApiError(400, "InvalidFault", "path_contains must be a string")
            method = f.get("method")
            if method is not None and (not isinstance(method, str) or not method.isalpha()):
                raise ApiError(400, "InvalidFault", "method must be an HTTP method name")
            status = f.get("status")
            if status is not None and status not in (429, 500, 503):
                raise ApiError(400, "InvalidFault", "status must be 429, 500 or 503")
            ra = f.get("retry_after")
            if ra is not None and (type(ra) is not int or not 0 <= ra <= 3600):
                raise ApiError(400, "InvalidFault", "retry_after must be an integer 0..3600")
            if ra is not None and status is None:
                raise ApiError(400, "InvalidFault", "retry_after needs a status")
            if status == 429 and ra is None:
                ra = 1  # ARM and Graph send Retry-After with every 429
            lost = f.get("lost", False)
            if not isinstance(lost, bool):
                raise ApiError(400, "InvalidFault", "lost must be a boolean")
            if lost and status is not None:
                raise ApiError(400, "InvalidFault", "a fault is either lost or has a status, not both")
            delay = f.get("delay_ms", 0)
            if type(delay) is not int or not 0 <= delay <= MAX_DELAY_MS:
                raise ApiError(400, "InvalidFault", "delay_ms must be an integer 0..%d" % MAX_DELAY_MS)
            times = f.get("times", 1)
            if type(times) is not int or not 1 <= times <= 10000:
                raise ApiError(400, "InvalidFault", "times must be an integer 1..10000")
            if not status and not lost and not delay:
                raise ApiError(400, "InvalidFault", "a fault needs a status, lost or delay_ms")
            for k in ("code", "message"):
                if f.get(k) is not None and not isinstance(f[k], str):
                    raise ApiError(400, "InvalidFault", "%s must be a string" % k)
            added.append({"path_contains": pc, "method": method.upper() if method else None, "status": status,
                          "retry_after": ra, "lost": lost, "delay_ms": delay, "times": times,
                          "code": f.get("code"), "message": f.get("message")})
        with self.lock:
            if len(self.faults) + len(added) > MAX_FAULTS:
                raise ApiError(400, "InvalidFault", "at most %d faults may be queued" % MAX_FAULTS)
            self.faults.extend(added)
            return list(self.faults)

    def take_fault(self, method, raw_path, query):
        target = (urllib.parse.unquote(raw_path) + ("?" + urllib.parse.unquote(query) if query else "")).lower()
        for f in self.faults:
            if f["method"] and f["method"] != method:
                continue
            if f["path_contains"].lower() not in target:
                continue
            f["times"] -= 1
            if f["times"] <= 0:
                self.faults.remove(f)
            self.counts["faults_applied"] += 1
            return dict(f)
        return None

    # ---------------------------------------------------------------- limits

    @staticmethod
    def op_kind(method):
        return "reads" if method in ("GET", "HEAD") else "deletes" if method == "DELETE" else "writes"

    @staticmethod
    def arm_level(path):
        m = re.match(r"^/subscriptions/([^/]+)", path, re.I)
        return ("subscription", m.group(1).lower()) if m else ("tenant", "")

    def ratelimit_header(self, method, path):
        """(header name, remaining) as things stand, without taking a token."""
        level, scope = self.arm_level(path)
        kind = self.op_kind(method)
        # the reference names -reads on GET and -writes on everything else
        name = "x-ms-ratelimit-remaining-%s-%s" % (level, "reads" if kind == "reads" else "writes")
        with self.lock:
            cap = int(self.limits[kind]["capacity"])
            return name, max(0, cap - 1)

    def quota(self):
        """What the requests taken while limits were on cost: per bucket, and the least time
        the published limits allow for them (the bench's bound): max over buckets of
        (taken - capacity) / refill rate."""
        buckets, bound = {}, 0.0
        for key, n in sorted(self.spent.items()):
            lim = self.limits[key.rsplit("/", 1)[1]]
            need = max(0.0, n - float(lim["capacity"])) / float(lim["per_second"]) if lim["per_second"] else 0.0
            buckets[key] = {"taken": n, "capacity": lim["capacity"], "per_second": lim["per_second"]}
            bound = max(bound, need)
        return {"bound_seconds": bound, "buckets": buckets}

    def limit(self, method, path, caller):
        level, scope = self.arm_level(path)
        kind = self.op_kind(method)
        name = "x-ms-ratelimit-remaining-%s-%s" % (level, "reads" if kind == "reads" else "writes")
        with self.lock:
            if not self.limits_enabled:
                return name, max(0, int(self.limits[kind]["capacity"]) - 1)
            key = (level, scope, caller, kind)
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = Bucket(self.limits[kind]["capacity"], self.limits[kind]["per_second"])
            ok, remaining, wait = b.take()
            if ok:
                spent = "%s/%s/%s" % (level, scope, kind)
                self.spent[spent] = self.spent.get(spent, 0) + 1
        if not ok:
            code = "SubscriptionRequestsThrottled" if level == "subscription" else "TenantRequestsThrottled"
            what = "subscription '%s'" % scope if level == "subscription" else "tenant"
            raise ApiError(429, code, "Number of '%s' requests for %s actor '%s' exceeded. Please try again "
                           "after '%d' seconds after additional tokens are available."
                           % (kind[:-1], what, caller, wait),
                           headers={"Retry-After": str(wait), name: "0"})
        return name, remaining

    # ---------------------------------------------------------------- token

    def token_api(self, method, path, body):
        parts = path.strip("/").split("/")
        tenant = parts[0].lower() if parts else ""
        rest = "/".join(parts[1:])
        if parts and parts[0].lower() == "common" and rest == "discovery/instance":
            raise ApiError(400, "invalid_request", "Instance discovery is not modelled by the Azure fake: "
                           "pass disable_instance_discovery=True.", aadsts=90000)
        if tenant != self.tenant:
            raise ApiError(400, "invalid_tenant", "Tenant '%s' not found. Check to make sure you have the "
                           "correct tenant ID and are signing into the correct cloud." % parts[0], aadsts=90002)
        if rest == "v2.0/.well-known/openid-configuration":
            if method != "GET":
                raise ApiError(405, "invalid_request", "Use GET.", aadsts=900561)
            t = "%s/%s" % (self.base, self.tenant)
            return Response(200, {
                "token_endpoint": t + "/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": t + "/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": t + "/v2.0",
                "request_uri_parameter_supported": False,
                "tenant_region_scope": None,
                "authorization_endpoint": t + "/oauth2/v2.0/authorize",
                "device_authorization_endpoint": t + "/oauth2/v2.0/devicecode",
                "end_session_endpoint": t + "/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
            })
        if rest != "oauth2/v2.0/token":
            raise ApiError(404, "invalid_request", "Endpoint not modelled by the Azure fake.", aadsts=90000)
        if method != "POST":
            raise ApiError(405, "invalid_request", "The token endpoint only accepts POST.", aadsts=900561)
        try:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_request", "The request body is not valid form data.", aadsts=900144)
        if form.get("grant_type") != "client_credentials":
            raise ApiError(400, "unsupported_grant_type", "The provided value for the input parameter "
                           "'grant_type' is not valid: the Azure fake only issues client_credentials tokens.",
                           aadsts=70003)
        cid = form.get("client_id", "")
        if not cid:
            raise ApiError(400, "invalid_request", "The request body must contain the following parameter: "
                           "'client_id'.", aadsts=900144)
        if cid != self.client_id:
            raise ApiError(400, "unauthorized_client", "Application with identifier '%s' was not found in the "
                           "directory '%s'." % (cid, self.tenant), aadsts=700016)
        secret = form.get("client_secret")
        if not secret:
            raise ApiError(401, "invalid_client", "The request body must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.", aadsts=7000218)
        if not secrets.compare_digest(secret.encode(), self.client_secret.encode()):
            raise ApiError(401, "invalid_client", "Invalid client secret provided. Ensure the secret being sent "
                           "in the request is the client secret value, not the client secret ID.", aadsts=7000215)
        scopes = form.get("scope", "").split()
        if not scopes:
            raise ApiError(400, "invalid_request", "The request body must contain the following parameter: "
                           "'scope'.", aadsts=900144)
        if len(scopes) > 1:
            raise ApiError(400, "invalid_scope", "The provided request must include a 'scope' input parameter. "
                           "Including scopes for multiple resources will result in an error.", aadsts=70011)
        scope = scopes[0]
        if not scope.endswith("/.default"):
            raise ApiError(400, "invalid_scope", "The provided value for the input parameter 'scope' is not "
                           "valid. The scope %s is not valid: client credentials need <resource>/.default."
                           % scope, aadsts=1002012)
        resource = scope[:-len("/.default")].rstrip("/").lower()
        audience = RESOURCES.get(resource)
        if not audience:
            raise ApiError(400, "invalid_resource", "The resource principal named %s was not found in the "
                           "tenant named %s." % (resource, self.tenant), aadsts=500011)
        token = "fake." + secrets.token_urlsafe(32)
        with self.lock:
            if len(self.tokens) >= MAX_TOKENS:
                t = time.time()
                for k in [k for k, v in self.tokens.items() if v["expires"] < t]:
                    del self.tokens[k]
                while len(self.tokens) >= MAX_TOKENS:
                    del self.tokens[next(iter(self.tokens))]
            self.tokens[token] = {"audience": audience, "expires": time.time() + TOKEN_LIFETIME,
                                  "client_id": cid}
        return Response(200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                              "ext_expires_in": TOKEN_LIFETIME, "access_token": token})

    def authenticate(self, headers, audience):
        """The caller's service principal object id, or a 401."""
        auth = headers.get("Authorization") or ""
        www = {"WWW-Authenticate": 'Bearer authorization_uri="%s/%s", error="invalid_token", '
                                   'error_description="The authentication failed"' % (self.base, self.tenant)}
        if audience == GRAPH:
            www = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="%s/%s/oauth2/authorize", '
                                       'client_id="00000003-0000-0000-c000-000000000000"' % (self.base, self.tenant)}
        if not auth:
            if audience == GRAPH:
                raise ApiError(401, "InvalidAuthenticationToken", "Access token is empty.", www)
            raise ApiError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is "
                           "missing.", www)
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if audience == GRAPH:
                raise ApiError(401, "InvalidAuthenticationToken", "Access token is empty.", www)
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid: the 'Authorization' "
                           "header must be 'Bearer <token>'.", www)
        with self.lock:
            info = self.tokens.get(token)
        if not info:
            if audience == GRAPH:
                raise ApiError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", www)
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.", www)
        if info["expires"] < time.time():
            if audience == GRAPH:
                raise ApiError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is "
                               "expired.", www)
            raise ApiError(401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than "
                           "current UTC time.", www)
        if info["audience"] != audience:
            if audience == GRAPH:
                raise ApiError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid "
                               "audience.", www)
            raise ApiError(401, "InvalidAuthenticationTokenAudience", "The access token has been obtained for "
                           "wrong audience or resource 'https://graph.microsoft.com'. It should exactly match "
                           "with one of the allowed audiences 'https://management.core.windows.net/',"
                           "'https://management.azure.com/'.", www)
        return self.sp_object_id

    # ---------------------------------------------------------------- ARM

    @staticmethod
    def api_version(q, allowed):
        v = q.get("api-version")
        if not v:
            raise ApiError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) "
                           "is required for all requests.")
        if v not in allowed:
            raise ApiError(400, "InvalidApiVersionParameter", "The api-version '%s' is not supported by the "
                           "Azure fake for this resource; supported: %s." % (v, ", ".join(sorted(allowed))))

    def page_size(self):
        return int(self.config["page_size"])

    def arm_page(self, items, q, path, skip_key, extra_params):
        """One page of items with an absolute nextLink on the fake's own address."""
        token = q.get(skip_key.lower())
        start = 0
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode() + b"==").decode())["o"])
                if start < 0:
                    raise ValueError
            except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                raise ApiError(400, "InvalidSkipToken", "The skip token '%s' is not valid." % token[:80])
        size = self.page_size()
        page = items[start:start + size]
        out = {"value": page}
        if start + size < len(items):
            tok = base64.urlsafe_b64encode(json.dumps({"o": start + size}).encode()).decode().rstrip("=")
            params = [(k, v) for k, v in extra_params if v is not None] + [(skip_key, tok)]
            out["nextLink"] = self.base + path + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return out

    def subscription(self, sub_id, for_write=False):
        s = self.subscriptions.get(sub_id.lower())
        if not s or not s["provisioned"]:
            raise ApiError(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sub_id)
        if for_write and s["state"] != "Enabled":
            raise ApiError(409, "ReadOnlyDisabledSubscription", "The subscription '%s' is disabled and therefore "
                           "marked as read only. You cannot perform any write actions on this subscription until "
                           "it is re-enabled." % sub_id)
        return s

    def arm(self, method, path, q, body, caller):
        p = path.rstrip("/") if path != "/" else path
        low = p.lower()
        with self.lock:
            m = re.match(r"^/providers/microsoft\.subscription/aliases(?:/([^/]+))?$", low)
            if m:
                self.api_version(q, API_SUBSCRIPTION)
                name = p.split("/")[-1] if m.group(1) else None
                if name is None:
                    if method != "GET":
                        raise self.not_allowed(method)
                    return Response(200, {"value": [self.alias_json(a) for a in self.sorted_aliases()]})
                if method == "PUT":
                    return self.alias_put(name, json_body(body), caller)
                if method == "GET":
                    return self.alias_get(name, poll=True)
                if method == "DELETE":
                    a = self.aliases.pop(name.lower(), None)
                    return Response(200 if a else 204)
                raise self.not_allowed(method)
            m = re.match(r"^/providers/microsoft\.subscription/subscriptionoperations/([^/]+)$", low)
            if m:
                self.api_version(q, API_SUBSCRIPTION)
                if method != "GET":
                    raise self.not_allowed(method)
                return self.alias_operation(p.split("/")[-1])
            m = re.match(r"^/subscriptions/([^/]+)/providers/microsoft\.subscription/cancel$", low)
            if m:
                self.api_version(q, API_SUBSCRIPTION)
                if method != "POST":
                    raise self.not_allowed(method)
                return self.cancel(m.group(1))
            if low == "/subscriptions":
                self.api_version(q, API_SUBSCRIPTIONS_GET)
                if method != "GET":
                    raise self.not_allowed(method)
                subs = [self.subscription_json(s) for s in sorted(self.subscriptions.values(),
                                                                  key=lambda s: s["seq"]) if s["provisioned"]]
                return Response(200, self.arm_page(subs, q, "/subscriptions", "$skipToken",
                                                   [("api-version", q.get("api-version"))]))
            m = re.match(r"^/subscriptions/([^/]+)$", low)
            if m:
                self.api_version(q, API_SUBSCRIPTIONS_GET)
                if method != "GET":
                    raise self.not_allowed(method)
                return Response(200, self.subscription_json(self.subscription(m.group(1))))
            m = re.match(r"^(/subscriptions/[^/]+)?/providers/microsoft\.authorization/roledefinitions(?:/([^/]+))?$",
                         low)
            if m:
                self.api_version(q, API_AUTHORIZATION)
                if method != "GET":
                    raise self.not_allowed(method)
                sub = None
                if m.group(1):
                    sub = self.subscription(m.group(1).split("/")[2])["id"]
                return self.role_definitions(sub, m.group(2), q)
            m = re.match(r"^/subscriptions/([^/]+)/providers/microsoft\.authorization/roleassignments(?:/([^/]+))?$",
                         low)
            if m:
                self.api_version(q, API_AUTHORIZATION)
                sub_id = m.group(1)
                if m.group(2) is None:
                    if method != "GET":
                        raise self.not_allowed(method)
                    return self.list_assignments(self.subscription(sub_id)["id"], q)
                name = m.group(2)
                if method == "PUT":
                    s = self.subscription(sub_id, for_write=True)
                    return self.put_assignment(s["id"], name, json_body(body), caller)
                if method == "GET":
                    s = self.subscription(sub_id)
                    a = self.assignments.get((s["id"], name))
                    if not a:
                        raise ApiError(404, "RoleAssignmentNotFound", "The role assignment '%s' is not found."
                                       % name)
                    return Response(200, self.assignment_json(a))
                if method == "DELETE":
                    s = self.subscription(sub_id, for_write=True)
                    a = self.assignments.pop((s["id"], name), None)
                    return Response(200, self.assignment_json(a)) if a else Response(204)
                raise self.not_allowed(method)
            m = re.match(r"^/subscriptions/([^/]+)/(resources|resourcegroups)$", low)
            if m:
                self.api_version(q, API_RESOURCES)
                if method != "GET":
                    raise self.not_allowed(method)
                s = self.subscription(m.group(1))
                if m.group(2) == "resources":
                    items = [self.resource_json(s, r) for r in s["resources"]]
                    path_out = "/subscriptions/%s/resources" % s["id"]
                else:
                    items = [self.group_json(s, g) for g in s["groups"].values()]
                    path_out = "/subscriptions/%s/resourcegroups" % s["id"]
                extra = [("api-version", q.get("api-version"))]
                if q.get("$filter") is not None:
                    raise ApiError(400, "NotModelledByFake", "$filter on resource lists is not modelled by the "
                                   "Azure fake.")
                return Response(200, self.arm_page(items, q, path_out, "$skiptoken", extra))
        raise ApiError(400, "NotModelledByFake", "%s %s is not modelled by the Azure fake." % (method, path[:200]))

    @staticmethod
    def not_allowed(method):
        return ApiError(405, "MethodNotAllowed", "The requested resource does not support http method '%s'."
                        % method)

    # aliases

    def norm_billing(self, scope):
        s = scope.strip()
        if s.lower().startswith("/providers/microsoft.billing/"):
            s = s[len("/providers/microsoft.billing"):]
        return s.rstrip("/").lower()

    def sorted_aliases(self):
        return sorted(self.aliases.values(), key=lambda a: a["seq"])

    def alias_put(self, name, req, caller):
        if not 1 <= len(name) <= 256 or any(ord(c) < 32 for c in name):
            raise ApiError(400, "InvalidAliasName", "The alias name is not valid.")
        props = req.get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content must have 'properties'.")
        display = opt_str(props, "displayName", "properties.")
        workload = opt_str(props, "workload", "properties.")
        billing = opt_str(props, "billingScope", "properties.")
        existing_sub = opt_str(props, "subscriptionId", "properties.")
        opt_str(props, "resellerId", "properties.")
        extra = props.get("additionalProperties") or {}
        if not isinstance(extra, dict):
            raise ApiError(400, "InvalidRequestContent", "'properties.additionalProperties' must be an object.")
        mg = opt_str(extra, "managementGroupId", "properties.additionalProperties.")
        owner = opt_str(extra, "subscriptionOwnerId", "properties.additionalProperties.")
        sub_tenant = opt_str(extra, "subscriptionTenantId", "properties.additionalProperties.")
        tags = extra.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise ApiError(400, "InvalidRequestContent", "'tags' must map strings to strings.")
        if sub_tenant and sub_tenant.lower() != self.tenant:
            raise ApiError(400, "NotModelledByFake", "Creating a subscription in another tenant "
                           "(subscriptionTenantId) is not modelled by the Azure fake.")
        old = self.aliases.get(name.lower())
        if old:
            same = (display in (None, old["displayName"]) and (workload or "").lower() == old["workload"].lower()
                    and (billing is None or self.norm_billing(billing) == self.norm_billing(old["billingScope"]))
                    and (existing_sub is None or existing_sub.lower() == old["subscriptionId"]))
            if not same:
                raise ApiError(409, "Conflict", "The alias '%s' already exists with different properties."
                               % name)
            return self.alias_answer(200, old, location=True)
        if existing_sub:
            s = self.subscription(existing_sub)
            a = self.new_alias(name, s, "Succeeded", 0)
            return Response(201, self.alias_json(a))
        if not workload:
            raise ApiError(400, "BadRequest", "The 'workload' property is required: Production or DevTest.")
        if workload.lower() not in ("production", "devtest"):
            raise ApiError(400, "BadRequest", "The workload '%s' is not valid: Production or DevTest." % workload)
        workload = "Production" if workload.lower() == "production" else "DevTest"
        if not billing:
            raise ApiError(400, "InvalidBillingScope", "The 'billingScope' property is required.")
        nb = self.norm_billing(billing)
        if not any(p.match(nb) for p in BILLING_PATTERNS):
            raise ApiError(400, "InvalidBillingScope", "The billing scope '%s' is not valid: expected "
                           "/billingAccounts/{a}/billingProfiles/{p}/invoiceSections/{i}, "
                           "/billingAccounts/{a}/customers/{c} or /billingAccounts/{a}/enrollmentAccounts/{e}, "
                           "optionally prefixed with /providers/Microsoft.Billing." % billing[:200])
        if nb not in self.billing_scopes:
            raise ApiError(404, "BillingScopeNotFound", "The billing scope '%s' was not found." % billing[:200])
        if mg and not re.match(r"^(/providers/microsoft\.management/managementgroups/)?[^/]+$", mg, re.I):
            raise ApiError(400, "InvalidManagementGroupId", "The management group id '%s' is not valid." % mg)
        sub_id = str(uuid.uuid4())
        s = {"id": sub_id, "seq": self.next_seq(), "displayName": display or name, "state": "Enabled",
             "provisioned": False, "workload": workload, "billingScope": billing, "managementGroupId": mg,
             "tags": dict(tags), "ownerId": owner, "createdBy": caller, "groups": {}, "resources": [],
             "createdTime": now_iso()}
        self.subscriptions[sub_id] = s
        polls = int(self.config["alias_polls"])
        a = self.new_alias(name, s, "Accepted" if polls > 0 else "Succeeded", polls)
        if polls <= 0:
            self.provision(s)
        return self.alias_answer(201, a, location=True)

    def new_alias(self, name, s, state, polls):
        a = {"name": name, "seq": self.next_seq(), "subscriptionId": s["id"], "displayName": s["displayName"],
             "workload": s["workload"], "billingScope": s["billingScope"], "managementGroupId": s["managementGroupId"],
             "ownerId": s["ownerId"], "tags": s["tags"], "state": state, "polls_left": polls,
             "createdTime": now_iso()}
        self.aliases[name.lower()] = a
        return a

    def alias_answer(self, status, a, location=False):
        """An alias answer; while Accepted with the polling headers (Retry-After, and Location on a PUT
        when alias_polling is location)."""
        headers = {}
        if a["state"] == "Accepted":
            ra = int(self.config["alias_retry_after"])
            if ra > 0:
                headers["Retry-After"] = str(ra)
            if self.config["alias_polling"] == "location" and location:
                headers["Location"] = "%s/providers/Microsoft.Subscription/subscriptionOperations/%s?api-version=" \
                                      "2021-10-01" % (self.base, urllib.parse.quote(a["name"], safe=""))
        return Response(status, self.alias_json(a), headers)

    def advance(self, a):
        """One status poll of an alias: Accepted for `alias_polls` polls, then Succeeded."""
        if a["state"] == "Accepted":
            if a["polls_left"] > 0:
                a["polls_left"] -= 1
            else:
                a["state"] = "Succeeded"
                self.provision(self.subscriptions[a["subscriptionId"]])

    def provision(self, s):
        if s["provisioned"]:
            return
        s["provisioned"] = True
        # the creating principal (and subscriptionOwnerId, when given) is Owner of the new subscription
        for pid, ptype in ((s["createdBy"], "ServicePrincipal"), (s["ownerId"], "User")):
            if pid:
                name = str(uuid.uuid5(uuid.NAMESPACE_URL, "owner:%s:%s" % (s["id"], pid.lower())))
                self.assignments[(s["id"], name)] = self.new_assignment(s["id"], name, OWNER_ROLE, pid.lower(),
                                                                        ptype, None, s["createdBy"])

    def alias_get(self, name, poll):
        a = self.aliases.get(name.lower())
        if not a:
            raise ApiError(404, "AliasNotFound", "The alias '%s' was not found." % name)
        if poll:
            self.advance(a)
        return self.alias_answer(200, a)

    def alias_operation(self, name):
        a = self.aliases.get(name.lower())
        if not a:
            raise ApiError(404, "OperationNotFound", "The subscription operation '%s' was not found." % name)
        self.advance(a)
        if a["state"] == "Accepted":
            r = self.alias_answer(202, a)
            r.body = None
            r.headers["Location"] = "%s/providers/Microsoft.Subscription/subscriptionOperations/%s?api-version=" \
                                    "2021-10-01" % (self.base, urllib.parse.quote(a["name"], safe=""))
            return r
        return Response(200, self.alias_json(a))

    def alias_json(self, a):
        return {
            "id": "/providers/Microsoft.Subscription/aliases/%s" % a["name"],
            "name": a["name"],
            "type": "Microsoft.Subscription/aliases",
            "properties": {
                "subscriptionId": a["subscriptionId"],
                "displayName": a["displayName"],
                "provisioningState": a["state"],
                "billingScope": a["billingScope"],
                "workload": a["workload"],
                "resellerId": None,
                "subscriptionOwnerId": a["ownerId"],
                "managementGroupId": a["managementGroupId"],
                "createdTime": a["createdTime"],
                "tags": a["tags"] or None,
            },
            "systemData": {"createdBy": self.client_id, "createdByType": "Application", "createdAt": a["createdTime"],
                           "lastModifiedBy": self.client_id, "lastModifiedByType": "Application",
                           "lastModifiedAt": a["createdTime"]},
        }

    def subscription_json(self, s):
        return {"id": "/subscriptions/%s" % s["id"], "subscriptionId": s["id"], "tenantId": self.tenant,
                "displayName": s["displayName"], "state": s["state"],
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                         "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
                "authorizationSource": "RoleBased", "managedByTenants": [], "tags": s["tags"]}

    def cancel(self, sub_id):
        s = self.subscription(sub_id)
        if s["state"] == "Disabled":
            return Response(200, {"subscriptionId": s["id"]})
        if s["resources"] or s["groups"]:
            raise ApiError(400, "SubscriptionNotEmpty", "The subscription '%s' cannot be cancelled while it holds "
                           "resources: %d resource group(s), %d resource(s). Delete them first."
                           % (s["id"], len(s["groups"]), len(s["resources"])))
        s["state"] = "Disabled"
        s["cancelledTime"] = now_iso()
        return Response(200, {"subscriptionId": s["id"]})

    # role definitions

    def all_roles(self):
        roles = [{"guid": g, "roleName": n, "type": "BuiltInRole", "description": d, "permissions": [p],
                  "assignableScopes": ["/"]} for g, n, d, p in BUILTIN_ROLES]
        return roles + sorted(self.custom_roles.values(), key=lambda r: r["seq"])

    def role_json(self, r, sub):
        prefix = "/subscriptions/%s" % sub if sub else ""
        return {"id": "%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (prefix, r["guid"]),
                "name": r["guid"], "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": r["roleName"], "type": r["type"], "description": r["description"],
                               "assignableScopes": r["assignableScopes"], "permissions": r["permissions"],
                               "createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2021-11-11T20:13:47.8628684Z",
                               "createdBy": None, "updatedBy": None}}

    def role_definitions(self, sub, guid, q):
        roles = self.all_roles()
        if guid:
            for r in roles:
                if r["guid"] == guid.lower():
                    return Response(200, self.role_json(r, sub))
            raise ApiError(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not "
                           "exist." % guid)
        flt = q.get("$filter")
        if flt:
            m = re.match(r"^\s*(roleName|type)\s+eq\s+'((?:[^']|'')*)'\s*$", flt, re.I)
            if not m:
                raise ApiError(400, "UnsupportedQuery", "The filter '%s' is not supported: use roleName eq '...' "
                               "or type eq '...'." % flt[:200])
            field = "roleName" if m.group(1).lower() == "rolename" else "type"
            want = m.group(2).replace("''", "'").lower()
            roles = [r for r in roles if r[field].lower() == want]
        items = [self.role_json(r, sub) for r in roles]
        path = ("/subscriptions/%s" % sub if sub else "") + "/providers/Microsoft.Authorization/roleDefinitions"
        return Response(200, self.arm_page(items, q, path, "$skipToken",
                                           [("$filter", flt), ("api-version", q.get("api-version"))]))

    def role_by_id(self, sub, rd_id):
        m = re.match(r"^(?:/subscriptions/([^/]+))?/providers/microsoft\.authorization/roledefinitions/([^/]+)$",
                     (rd_id or "").rstrip("/").lower())
        if not m:
            raise ApiError(400, "InvalidRoleDefinitionId", "The role definition ID '%s' is not valid." % rd_id)
        if m.group(1) and m.group(1) != sub:
            raise ApiError(400, "InvalidRoleDefinitionId", "The role definition ID '%s' names another subscription "
                           "than the assignment's scope." % rd_id)
        for r in self.all_roles():
            if r["guid"] == m.group(2):
                return r
        raise ApiError(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not "
                       "exist." % m.group(2))

    # role assignments

    def new_assignment(self, sub, name, role_guid, pid, ptype, props, caller):
        t = now_iso()
        props = props or {}
        return {"sub": sub, "name": name, "seq": self.next_seq(), "role": role_guid, "principalId": pid,
                "principalType": ptype, "description": props.get("description"), "condition": props.get("condition"),
                "conditionVersion": props.get("conditionVersion"),
                "delegatedManagedIdentityResourceId": props.get("delegatedManagedIdentityResourceId"),
                "createdOn": t, "updatedOn": t, "createdBy": caller, "updatedBy": caller}

    def assignment_json(self, a):
        return {
            "id": "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/%s" % (a["sub"], a["name"]),
            "name": a["name"],
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s"
                                    % (a["sub"], a["role"]),
                "principalId": a["principalId"], "principalType": a["principalType"],
                "scope": "/subscriptions/%s" % a["sub"],
                "condition": a["condition"], "conditionVersion": a["conditionVersion"],
                "createdOn": a["createdOn"], "updatedOn": a["updatedOn"],
                "createdBy": a["createdBy"], "updatedBy": a["updatedBy"],
                "delegatedManagedIdentityResourceId": a["delegatedManagedIdentityResourceId"],
                "description": a["description"],
            },
        }

    def principal_kind(self, pid):
        if pid == self.sp_object_id:
            return "ServicePrincipal"
        u = self.users.get(pid)
        return u["kind"] if u else None

    def put_assignment(self, sub, name, req, caller):
        if not is_guid(name):
            raise ApiError(400, "InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role "
                           "assignment ID must be a GUID." % name)
        props = req.get("properties")
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content must have 'properties'.")
        for k in ("roleDefinitionId", "principalId", "principalType", "description", "condition",
                  "conditionVersion", "delegatedManagedIdentityResourceId"):
            opt_str(props, k, "properties.")
        if not props.get("roleDefinitionId") or not props.get("principalId"):
            raise ApiError(400, "InvalidRequestContent", "'properties.roleDefinitionId' and "
                           "'properties.principalId' are required.")
        role = self.role_by_id(sub, props["roleDefinitionId"])
        pid = props["principalId"]
        if not is_guid(pid):
            raise ApiError(400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
        pid = pid.lower()
        ptype = props.get("principalType") or "User"
        if ptype not in ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device"):
            raise ApiError(400, "InvalidPrincipalType", "The principal type '%s' is not valid." % ptype)
        kind = self.principal_kind(pid)
        if kind is None:
            raise ApiError(400, "PrincipalNotFound", "Principal %s does not exist in the directory %s. Check that "
                           "you have the correct principal ID. If you are creating this principal and then "
                           "immediately assigning a role, this error might be related to a replication delay. In "
                           "this case, set the role assignment principalType property to a value, such as "
                           "ServicePrincipal, User, or Group." % (pid.replace("-", ""), self.tenant))
        if kind != ptype:
            raise ApiError(400, "UnmatchedPrincipalType", "The PrincipalId '%s' has type '%s', which is different "
                           "from specified PrincipalType '%s'." % (pid.replace("-", ""), kind, ptype))
        key = (sub, name.lower())
        old = self.assignments.get(key)
        if old:
            if old["principalId"] != pid or old["role"] != role["guid"]:
                raise ApiError(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, "
                               "and scope are not allowed to be updated.")
            for k in ("description", "condition", "conditionVersion"):
                if k in props:
                    old[k] = props[k]
            old["updatedOn"], old["updatedBy"] = now_iso(), caller
            return Response(200, self.assignment_json(old))
        for a in self.assignments.values():
            if a["sub"] == sub and a["principalId"] == pid and a["role"] == role["guid"]:
                raise ApiError(409, "RoleAssignmentExists", "The role assignment already exists.")
        a = self.assignments[key] = self.new_assignment(sub, name.lower(), role["guid"], pid, ptype, props, caller)
        return Response(201, self.assignment_json(a))

    def list_assignments(self, sub, q):
        flt = q.get("$filter")
        items = sorted((a for a in self.assignments.values() if a["sub"] == sub), key=lambda a: a["seq"])
        if flt:
            clauses = re.split(r"\s+and\s+", flt.strip(), flags=re.I)
            for c in clauses:
                if re.match(r"^atScope\(\)$", c, re.I):
                    continue  # every assignment modelled is at the subscription scope
                m = re.match(r"^assignedTo\('([^']*)'\)$", c, re.I) or \
                    re.match(r"^principalId\s+eq\s+'([^']*)'$", c, re.I)
                if not m:
                    raise ApiError(400, "UnsupportedQuery", "The filter '%s' is not supported: use atScope(), "
                                   "assignedTo('{objectId}'), principalId eq '{objectId}', joined with 'and'."
                                   % flt[:200])
                want = m.group(1).lower()
                items = [a for a in items if a["principalId"] == want]
        return Response(200, self.arm_page([self.assignment_json(a) for a in items], q,
                                           "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments"
                                           % sub, "$skipToken",
                                           [("$filter", flt), ("api-version", q.get("api-version"))]))

    # resources

    def group_json(self, s, g):
        return {"id": "/subscriptions/%s/resourceGroups/%s" % (s["id"], g["name"]), "name": g["name"],
                "type": "Microsoft.Resources/resourceGroups", "location": g["location"], "managedBy": None,
                "tags": g["tags"], "properties": {"provisioningState": "Succeeded"}}

    def resource_json(self, s, r):
        return {"id": "/subscriptions/%s/resourceGroups/%s/providers/%s/%s" % (s["id"], r["group"], r["type"],
                                                                              r["name"]),
                "name": r["name"], "type": r["type"], "location": r["location"], "kind": r.get("kind"),
                "sku": r.get("sku"), "tags": r["tags"], "managedBy": None, "identity": None, "plan": None,
                "extendedLocation": None}

    # ---------------------------------------------------------------- Graph

    def graph(self, method, path, q, caller):
        if method != "GET":
            raise ApiError(405, "Request_BadRequest", "The Azure fake serves only GET on Graph.")
        m = re.match(r"^/v1\.0/users(?:/([^/]+)|\('((?:[^']|'')*)'\))?/?$", path, re.I)
        if not m:
            raise ApiError(400, "BadRequest", "Resource not modelled by the Azure fake: %s" % path[:200])
        select = self.graph_select(q.get("$select"))
        with self.lock:
            key = m.group(1) if m.group(1) is not None else (m.group(2).replace("''", "'") if m.group(2) else None)
            if key is not None:
                u = self.find_user(key)
                if not u:
                    raise ApiError(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its "
                                   "queried reference-property objects are not present." % key)
                ctx = "%s/v1.0/$metadata#users%s/$entity" % (self.base, "(%s)" % ",".join(select)
                                                              if q.get("$select") else "")
                return Response(200, dict({"@odata.context": ctx}, **self.user_json(u, select)))
            users = sorted((u for u in self.users.values() if u["kind"] == "User"), key=lambda u: u["seq"])
            flt = q.get("$filter")
            if flt:
                fm = re.match(r"^\s*(mail|userPrincipalName|id)\s+eq\s+'((?:[^']|'')*)'\s*$", flt, re.I)
                if not fm:
                    raise ApiError(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause "
                                   "specified for the Azure fake: use mail, userPrincipalName or id eq '...'.")
                field = {"mail": "mail", "userprincipalname": "userPrincipalName", "id": "id"}[fm.group(1).lower()]
                want = fm.group(2).replace("''", "'").lower()
                users = [u for u in users if (u.get(field) or "").lower() == want]
            top = self.page_size()
            if q.get("$top"):
                try:
                    top = int(q["$top"])
                    if not 1 <= top <= 999:
                        raise ValueError
                except ValueError:
                    raise ApiError(400, "Request_BadRequest", "Invalid page size specified: '%s'. Must be between "
                                   "1 and 999 inclusive." % q["$top"][:20])
            start = 0
            if q.get("$skiptoken"):
                try:
                    start = int(json.loads(base64.urlsafe_b64decode(q["$skiptoken"].encode() + b"==").decode())["o"])
                except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                    raise ApiError(400, "Request_BadRequest", "The skip token is not valid.")
            page = users[start:start + top]
            ctx = "%s/v1.0/$metadata#users%s" % (self.base, "(%s)" % ",".join(select) if q.get("$select") else "")
            out = {"@odata.context": ctx, "value": [self.user_json(u, select) for u in page]}
            if start + top < len(users):
                params = [(k, q[k.lower()]) for k in ("$filter", "$select", "$top") if q.get(k.lower())]
                tok = base64.urlsafe_b64encode(json.dumps({"o": start + top}).encode()).decode().rstrip("=")
                params.append(("$skiptoken", tok))
                out["@odata.nextLink"] = "%s/v1.0/users?%s" % (self.base, urllib.parse.urlencode(
                    params, quote_via=urllib.parse.quote))
            return Response(200, out)

    @staticmethod
    def graph_select(sel):
        if not sel:
            return list(USER_DEFAULT_SELECT)
        canon = {p.lower(): p for p in USER_PROPERTIES}
        out = []
        for name in sel.split(","):
            name = name.strip()
            if name.lower() not in canon:
                raise ApiError(400, "Request_BadRequest", "Could not find a property named '%s' on type "
                               "'microsoft.graph.user'." % name[:100])
            out.append(canon[name.lower()])
        return out

    def find_user(self, key):
        k = key.lower()
        u = self.users.get(k)
        if u and u["kind"] == "User":
            return u
        for u in self.users.values():
            if u["kind"] == "User" and (u.get("userPrincipalName") or "").lower() == k:
                return u
        return None

    @staticmethod
    def user_json(u, select):
        out = {}
        for p in select:
            v = u.get(p)
            if v is None and p in ("businessPhones", "otherMails"):
                v = []
            out[p] = v
        return out

    # ---------------------------------------------------------------- control API

    def control(self, method, path, q, body):
        p = path.rstrip("/")
        if p == "/_fake/state" and method == "GET":
            return Response(200, self.state())
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", "Use POST (GET for /_fake/state).")
        if p == "/_fake/reset":
            self.reset()
            return Response(200, self.state())
        data = json.loads(body.decode("utf-8")) if body and body.strip() else {}
        if p == "/_fake/faults":
            items = data if isinstance(data, list) else data.get("faults", [data]) if isinstance(data, dict) else None
            if items is None:
                raise ApiError(400, "InvalidFault", "send a fault object, a list, or {\"faults\": [...]}")
            return Response(200, {"faults": self.add_faults(items)})
        if not isinstance(data, dict) and p != "/_fake/users":
            raise ApiError(400, "InvalidRequestContent", "send a JSON object")
        with self.lock:
            if p == "/_fake/users":
                items = data if isinstance(data, list) else data.get("users", [data]) if isinstance(data, dict) else []
                return Response(200, {"users": [self.seed_user(u) for u in items]})
            if p == "/_fake/resources":
                return Response(200, self.seed_resource(data))
            if p == "/_fake/role-definitions":
                return Response(200, self.seed_role(data))
            if p == "/_fake/billing-scopes":
                bs = data.get("billingScope")
                if not isinstance(bs, str) or not any(pt.match(self.norm_billing(bs)) for pt in BILLING_PATTERNS):
                    raise ApiError(400, "InvalidBillingScope", "billingScope must be a billing scope path")
                self.billing_scopes[self.norm_billing(bs)] = bs
                return Response(200, {"billingScopes": sorted(self.billing_scopes.values())})
            if p == "/_fake/limits":
                return Response(200, self.set_limits(data))
            if p == "/_fake/config":
                return Response(200, {"config": self.set_config(data)})
        raise ApiError(404, "NotFound", "No such control endpoint: %s %s" % (method, p[:100]))

    def seed_user(self, u):
        if not isinstance(u, dict):
            raise ApiError(400, "InvalidRequestContent", "each user must be a JSON object")
        for k, v in u.items():
            if k not in USER_PROPERTIES + ["kind"]:
                raise ApiError(400, "InvalidRequestContent", "unknown user field '%s'" % k[:50])
            if k not in ("businessPhones", "otherMails", "accountEnabled") and v is not None \
                    and not isinstance(v, str):
                raise ApiError(400, "InvalidRequestContent", "user field '%s' must be a string" % k)
        kind = u.get("kind") or "User"
        if kind not in ("User", "Group", "ServicePrincipal"):
            raise ApiError(400, "InvalidRequestContent", "kind must be User, Group or ServicePrincipal")
        uid = (u.get("id") or str(uuid.uuid4())).lower()
        if not is_guid(uid):
            raise ApiError(400, "InvalidRequestContent", "id must be a GUID")
        if kind == "User" and not u.get("userPrincipalName"):
            raise ApiError(400, "InvalidRequestContent", "a user needs a userPrincipalName")
        if kind == "User":
            upn = u["userPrincipalName"].lower()
            for other in self.users.values():
                if other["id"] != uid and (other.get("userPrincipalName") or "").lower() == upn:
                    raise ApiError(400, "InvalidRequestContent", "userPrincipalName %s is taken" % upn)
        old = self.users.get(uid)
        rec = {"seq": old["seq"] if old else self.next_seq(), "kind": kind, "accountEnabled": True,
               "userType": "Member"}
        rec.update({k: v for k, v in u.items() if k != "kind"})
        rec["id"] = uid
        self.users[uid] = rec
        return {k: v for k, v in rec.items() if k != "seq"}

    def seed_resource(self, d):
        unknown = set(d) - {"subscriptionId", "resourceGroup", "name", "type", "location", "tags", "kind", "sku",
                            "remove"}
        if unknown:
            raise ApiError(400, "InvalidRequestContent", "unknown fields: %s" % ", ".join(sorted(unknown)))
        sid = d.get("subscriptionId")
        if not isinstance(sid, str):
            raise ApiError(400, "InvalidRequestContent", "subscriptionId is required")
        s = self.subscriptions.get(sid.lower())
        if not s or not s["provisioned"]:
            raise ApiError(404, "SubscriptionNotFound", "no provisioned subscription %s" % sid)
        rg = d.get("resourceGroup")
        if not isinstance(rg, str) or not re.match(r"^[-\w._()]{1,90}$", rg):
            raise ApiError(400, "InvalidRequestContent", "resourceGroup must be a resource group name")
        name, rtype = d.get("name"), d.get("type")
        if (name is None) != (rtype is None) or (name is not None and not (isinstance(name, str) and
                                                                           isinstance(rtype, str) and "/" in rtype)):
            raise ApiError(400, "InvalidRequestContent", "a resource needs both name and type (Namespace/type)")
        if d.get("remove"):
            if name:
                s["resources"] = [r for r in s["resources"] if not (r["group"].lower() == rg.lower() and
                                                                    r["name"].lower() == name.lower() and
                                                                    r["type"].lower() == rtype.lower())]
            else:
                s["groups"].pop(rg.lower(), None)
                s["resources"] = [r for r in s["resources"] if r["group"].lower() != rg.lower()]
            return self.resources_state(s)
        loc = d.get("location") or "eastus"
        tags = d.get("tags") or {}
        if rg.lower() not in s["groups"]:
            s["groups"][rg.lower()] = {"name": rg, "location": loc, "tags": {} if name else tags}
        if name:
            s["resources"] = [r for r in s["resources"] if not (r["group"].lower() == rg.lower() and
                                                                r["name"].lower() == name.lower() and
                                                                r["type"].lower() == rtype.lower())]
            s["resources"].append({"group": s["groups"][rg.lower()]["name"], "name": name, "type": rtype,
                                   "location": loc, "tags": tags, "kind": d.get("kind"), "sku": d.get("sku")})
        return self.resources_state(s)

    @staticmethod
    def resources_state(s):
        return {"subscriptionId": s["id"], "resourceGroups": [g["name"] for g in s["groups"].values()],
                "resources": ["%s/%s/%s" % (r["group"], r["type"], r["name"]) for r in s["resources"]]}

    def seed_role(self, d):
        name = d.get("roleName")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "InvalidRequestContent", "roleName is required")
        guid = (d.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy-role:" + name))).lower()
        if not is_guid(guid) or any(guid == g for g, *_ in BUILTIN_ROLES):
            raise ApiError(400, "InvalidRequestContent", "id must be a GUID that is not a built-in role's")
        if any(r["roleName"].lower() == name.lower() for r in self.all_roles() if r["guid"] != guid):
            raise ApiError(400, "InvalidRequestContent", "a role named %s exists" % name)
        perms = d.get("permissions") or [{"actions": ["*/read"], "notActions": [], "dataActions": [],
                                          "notDataActions": []}]
        old = self.custom_roles.get(guid)
        self.custom_roles[guid] = {"guid": guid, "seq": old["seq"] if old else self.next_seq(), "roleName": name,
                                   "type": "CustomRole", "description": d.get("description") or "",
                                   "permissions": perms, "assignableScopes": d.get("assignableScopes") or ["/"]}
        return self.role_json(self.custom_roles[guid], None)

    def set_limits(self, d):
        if "enabled" in d:
            if not isinstance(d["enabled"], bool):
                raise ApiError(400, "InvalidRequestContent", "enabled must be a boolean")
            self.limits_enabled = d["enabled"]
        for kind in ("reads", "writes", "deletes"):
            if kind in d:
                v = d[kind]
                if not isinstance(v, dict) or set(v) - {"capacity", "per_second"}:
                    raise ApiError(400, "InvalidRequestContent", "%s must be {capacity, per_second}" % kind)
                for k in ("capacity", "per_second"):
                    if k in v and (not isinstance(v[k], (int, float)) or isinstance(v[k], bool) or v[k] < 0
                                   or (k == "capacity" and v[k] < 1)):
                        raise ApiError(400, "InvalidRequestContent", "%s.%s must be a number (capacity >= 1)"
                                       % (kind, k))
                    if k in v:
                        self.limits[kind][k] = v[k]
        self.buckets = {}
        self.spent = {}
        return {"enabled": self.limits_enabled, **self.limits}

    def set_config(self, d):
        for k, v in d.items():
            if k not in DEFAULT_CONFIG:
                raise ApiError(400, "InvalidRequestContent", "unknown config key %s" % k[:50])
            if k == "alias_polling":
                if v not in ("body", "location"):
                    raise ApiError(400, "InvalidRequestContent", "alias_polling is body or location")
            elif type(v) is not int or v < (1 if k == "page_size" else 0) or v > 1000:
                raise ApiError(400, "InvalidRequestContent", "%s must be an integer in range" % k)
            self.config[k] = v
        return dict(self.config)

    def state(self):
        with self.lock:
            return {
                "tenantId": self.tenant, "clientId": self.client_id,
                "servicePrincipalObjectId": self.sp_object_id,
                "billingScopes": sorted(self.billing_scopes.values()),
                "config": dict(self.config),
                "limits": {"enabled": self.limits_enabled, **self.limits},
                "quota": self.quota(),
                "subscriptions": [dict(self.subscription_json(s), provisioned=s["provisioned"],
                                       billingScope=s["billingScope"], managementGroupId=s["managementGroupId"],
                                       workload=s["workload"], **self.resources_state(s))
                                  for s in sorted(self.subscriptions.values(), key=lambda s: s["seq"])],
                "aliases": [self.alias_json(a) for a in self.sorted_aliases()],
                "roleAssignments": [self.assignment_json(a) for a in
                                    sorted(self.assignments.values(), key=lambda a: a["seq"])],
                "customRoleDefinitions": [self.role_json(r, None) for r in
                                          sorted(self.custom_roles.values(), key=lambda r: r["seq"])],
                "users": [{k: v for k, v in u.items() if k != "seq"} for u in
                          sorted(self.users.values(), key=lambda u: u["seq"])],
                "faults": [dict(f) for f in self.faults],
                "requests": dict(self.counts),
            }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def version_string(self):
        return "azure-fake"

    def classify(self, path):
        if path.startswith("/_fake/") or path == "/_fake":
            return "control"
        if re.match(r"^/v1\.0(/|$)|^/beta(/|$)", path, re.I):
            return GRAPH
        if re.match(r"^/[^/]+/(v2\.0/\.well-known/openid-configuration|oauth2/)", path, re.I) or \
                path.lower().startswith("/common/discovery/"):
            return "token"
        return ARM

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ApiError(400, "InvalidRequestContent", "bad chunked encoding")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "The request body exceeds 1 MiB.")
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
            raise ApiError(400, "InvalidRequestContent", "Content-Length is not valid.")
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "The request body exceeds 1 MiB.")
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise ApiError(400, "InvalidRequestContent", "The request body is shorter than Content-Length.")
        return data

    def handle_method(self):
        fake = self.server.fake
        kind = ARM
        try:
            split = urllib.parse.urlsplit(self.path)
            raw_path, query = split.path or "/", split.query
            kind = self.classify(urllib.parse.unquote(raw_path))
            body = self.read_body()
            if kind == "control":
                if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                    raise ApiError(403, "Forbidden", "The control API answers loopback clients only.")
                try:
                    resp = fake.control(self.command, urllib.parse.unquote(raw_path), query, body)
                except (ValueError, UnicodeDecodeError) as e:
                    raise ApiError(400, "InvalidRequestContent", "The control request is not valid JSON: %s"
                                   % str(e)[:200])
            else:
                resp = fake.serve(self.command, raw_path, query, self.headers, body, kind)
        except ApiError as e:
            resp = fake.error_response("arm" if kind == "control" else kind, e, self.headers)
        except Exception:
            traceback.print_exc()
            resp = fake.error_response(kind if kind != "control" else ARM,
                                       ApiError(500, "InternalServerError", "The Azure fake failed; see its log."),
                                       self.headers)
        if resp.lost:
            self.log_message('"%s" LOST (applied, connection closed without an answer)', self.requestline)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send(resp, kind)

    def send(self, resp, kind):
        rid = str(uuid.uuid4())
        payload = b""
        if resp.body is not None:
            payload = json.dumps(resp.body).encode("utf-8")
        self.send_response(resp.status)
        if resp.body is not None:
            ctype = "application/json; charset=utf-8"
            if kind == GRAPH:
                ctype = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;" \
                        "charset=utf-8"
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", rid)
        self.send_header("Cache-Control", "no-cache")
        if kind == GRAPH:
            self.send_header("request-id", rid)
            self.send_header("client-request-id", self.headers.get("client-request-id") or rid)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        # malformed request lines/headers: an Azure-shaped JSON error instead of HTML
        self.close_connection = True
        try:
            body = json.dumps({"error": {"code": "BadRequest" if code < 500 else "InternalServerError",
                                         "message": "%d %s" % (code, message or "")}}).encode()
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
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
    return fake_tls.make_certs(directory, "Canopy Azure fake test CA")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="instance directory (certificates are written here)")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", default=os.environ.get("AZURE_FAKE_CLIENT_SECRET"))
    args = parser.parse_args()
    if not args.client_secret:
        parser.error("give the client secret (AZURE_FAKE_CLIENT_SECRET or --client-secret)")
    paths = make_certs(args.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server.pem"], paths["server-key.pem"])
    base = "https://127.0.0.1:%d" % args.port
    fake = Fake(args.tenant, args.client_id, args.client_secret, base)
    server = Server(("127.0.0.1", args.port), fake, ctx)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    sys.stderr.write("azure fake serving %s (tenant %s, client %s)\n" % (base, args.tenant, args.client_id))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
