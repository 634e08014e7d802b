"""Proves the Google Cloud fake (scripts/gcp_fake.py) faithful enough for Canopy's GCP adapter
by driving it with Google's own Python clients (google-auth, google-cloud-resource-manager,
google-cloud-asset; REST transport). Only the fake's control API (/_fake/...) is called by hand.

Usage (scripts/gcp start prints the command and the values):
    python gcp_fidelity.py BASE_URL CA_PATH KEY_PATH FOLDER

Prints one line per check, `PASS name` or `FAIL name: why`, and exits 0 only when every
check passed. It resets the fake first and leaves test data in it.
"""
import json
import os
import signal
import ssl
import sys
import time
import traceback
import urllib.request
import uuid

CHECK_TIMEOUT = 90   # seconds for one check, whatever it does
CALL_TIMEOUT = 20    # seconds for one client call
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SCOPE_READ = "https://www.googleapis.com/auth/cloud-platform.read-only"

if len(sys.argv) != 5:
    sys.exit("usage: gcp_fidelity.py BASE_URL CA_PATH KEY_PATH FOLDER")
BASE, CA, KEY, FOLDER = sys.argv[1:]
BASE = BASE.rstrip("/")
# the REST transport and google-auth's token refresh both use requests: it trusts REQUESTS_CA_BUNDLE
# (SSL_CERT_FILE alone does not work: docs/platforms/gcp-api.md section 1.4)
os.environ["REQUESTS_CA_BUNDLE"] = CA

import requests  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from google.api_core import exceptions as gexc  # noqa: E402
from google.api_core.future.polling import DEFAULT_POLLING  # noqa: E402
from google.auth import exceptions as auth_exc  # noqa: E402
from google.auth import jwt as google_jwt  # noqa: E402
from google.auth.transport.requests import AuthorizedSession, Request  # noqa: E402
from google.cloud import asset_v1, resourcemanager_v3  # noqa: E402
from google.oauth2 import service_account  # noqa: E402
from google.protobuf import field_mask_pb2  # noqa: E402

SSL = ssl.create_default_context(cafile=CA)
POLL = DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.2)
OPTS = {"api_endpoint": BASE}
with open(KEY) as f:
    KEY_INFO = json.load(f)
RUN = uuid.uuid4().hex[:6]


class TimedRequest(Request):
    """google-auth's requests transport with a bounded wait on the token endpoint."""

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return super().__call__(url, method=method, body=body, headers=headers, timeout=timeout or CALL_TIMEOUT,
                                **kwargs)


def creds(scopes=None, info=None):
    return service_account.Credentials.from_service_account_info(info or KEY_INFO, scopes=scopes)


def projects(c=None):
    return resourcemanager_v3.ProjectsClient(credentials=c or creds(), transport="rest", client_options=OPTS)


def assets(c=None):
    return asset_v1.AssetServiceClient(credentials=c or creds(), transport="rest", client_options=OPTS)


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=SSL) as resp:
        return json.loads(resp.read() or b"{}")


def state():
    return control("GET", "/_fake/state")


def methods():
    return state()["requests"]["methods"]


class Failed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Failed(why)


def raises(exc_type, fn, status=None, http=None):
    """Calls fn, expecting exc_type (and, for API errors, the body's error.status `status`)."""
    try:
        fn()
    except exc_type as e:
        if http is not None and getattr(e, "code", None) != http:
            raise Failed("%s with HTTP %r, expected %r" % (type(e).__name__, getattr(e, "code", None), http))
        if status is not None:
            got = None
            resp = getattr(e, "response", None)
            if resp is not None:
                try:
                    got = resp.json()["error"]["status"]
                except (ValueError, KeyError, TypeError):
                    pass
            if got != status:
                raise Failed("%s with status %r, expected %r: %s" % (type(e).__name__, got, status, str(e)[:200]))
        return e
    raise Failed("expected %s, but the call succeeded" % exc_type.__name__)


CTX = {}
RESULTS = []


def check(fn):
    RESULTS.append(fn)
    return fn


def on_alarm(signum, frame):
    raise TimeoutError("check did not finish within %d s" % CHECK_TIMEOUT)


def run():
    signal.signal(signal.SIGALRM, on_alarm)
    failed = 0
    for fn in RESULTS:
        name = fn.__name__
        signal.alarm(CHECK_TIMEOUT)
        try:
            fn()
            signal.alarm(0)
            print("PASS %s" % name, flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a FAIL line
            signal.alarm(0)
            failed += 1
            why = str(e).replace("\n", " ")[:300] or type(e).__name__
            if not isinstance(e, (Failed, TimeoutError)):
                why = "%s: %s" % (type(e).__name__, why)
                traceback.print_exc(file=sys.stderr)
            print("FAIL %s: %s" % (name, why), flush=True)
    print("%d passed, %d failed" % (len(RESULTS) - failed, failed), file=sys.stderr)
    return failed


def new_project(pid, labels=None, display=None):
    op = projects().create_project(project=resourcemanager_v3.Project(
        project_id=pid, parent=FOLDER, display_name=display or "canopy test",
        labels=labels or {"canopy-tenant": "t-" + pid[-6:]}), timeout=CALL_TIMEOUT)
    return op.result(timeout=30, polling=POLL)


def policy_of(pc, name):
    return pc.get_iam_policy(request={"resource": name, "options": {"requested_policy_version": 3}},
                             timeout=CALL_TIMEOUT)


def members(policy, role):
    return sorted(m for b in policy.bindings if b.role == role for m in b.members)


# ------------------------------------------------------------------ authentication

@check
def setup():
    s = control("POST", "/_fake/reset")
    expect(s["serviceAccount"] == KEY_INFO["client_email"], "the fake's service account is the key's")
    expect(s["tokenUri"] == KEY_INFO["token_uri"] and KEY_INFO["token_uri"].startswith(BASE),
           "token_uri points at the fake")
    expect(any(f["name"] == FOLDER for f in s["folders"]), "the fake knows %s" % FOLDER)
    expect(KEY_INFO["private_key"].startswith("-----BEGIN PRIVATE KEY-----"), "PKCS#8 key")
    CTX["pid"] = "canopy-t1-%s" % RUN


@check
def token_exchange_jwt_bearer():
    c = creds([SCOPE])
    before = state()["requests"]
    c.refresh(TimedRequest())
    expect(c.token and c.token.startswith("ya29."), "an access token: %r" % (c.token or "")[:20])
    expect(c.expiry is not None, "an expiry")
    s = AuthorizedSession(c)
    r = s.get(BASE + "/v3/projects", params={"parent": FOLDER}, timeout=CALL_TIMEOUT)
    expect(r.status_code == 200 and r.json() == {}, "list with the token: %s %s" % (r.status_code, r.text[:200]))
    after = state()["requests"]
    expect(after["token"] == before["token"] + 1, "one POST /token")
    expect(after["auth_access_token"] == before["auth_access_token"] + 1, "the API call used the access token")


@check
def token_wrong_key_refused():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = dict(KEY_INFO, private_key=other.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()).decode())
    e = raises(auth_exc.RefreshError, lambda: creds([SCOPE], info).refresh(TimedRequest()))
    expect("invalid_grant" in str(e), "invalid_grant: %s" % str(e)[:200])
    CTX["bad_info"] = info


@check
def self_signed_jwt_accepted_and_checked():
    before = state()["requests"]
    got = list(projects().list_projects(parent=FOLDER, timeout=CALL_TIMEOUT))
    expect(got == [], "empty folder: %s" % got)
    after = state()["requests"]
    expect(after["token"] == before["token"], "the GAPIC client made no token call")
    expect(after["auth_self_signed_jwt"] == before["auth_self_signed_jwt"] + 1, "it sent a self-signed JWT")
    raises(gexc.Unauthorized, lambda: list(projects(creds(info=CTX["bad_info"])).list_projects(
        parent=FOLDER, timeout=CALL_TIMEOUT)), status="UNAUTHENTICATED", http=401)


@check
def self_signed_jwt_scope_claim_and_audience():
    # the form the official Rust client sends: a `scope` claim and no `aud` (google-auth makes it too)
    before = state()["requests"]
    c = creds([SCOPE]).with_always_use_jwt_access(True)
    r = AuthorizedSession(c).get(BASE + "/v3/projects", params={"parent": FOLDER}, timeout=CALL_TIMEOUT)
    expect(r.status_code == 200, "scope-claim JWT: %s %s" % (r.status_code, r.text[:200]))
    after = state()["requests"]
    expect(after["token"] == before["token"] and after["auth_self_signed_jwt"] == before["auth_self_signed_jwt"] + 1,
           "no token call, a self-signed JWT")
    # a JWT for another service's audience is refused
    other = google_jwt.Credentials.from_service_account_info(KEY_INFO, audience="https://cloudasset.googleapis.com/")
    r = AuthorizedSession(other).get(BASE + "/v3/projects", params={"parent": FOLDER}, timeout=CALL_TIMEOUT)
    expect(r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED", "wrong aud: %s" % r.status_code)


@check
def read_only_scope_cannot_write():
    ro = projects(creds([SCOPE_READ]).with_always_use_jwt_access(True))
    expect(list(ro.list_projects(parent=FOLDER, timeout=CALL_TIMEOUT)) == [], "reads work")
    e = raises(gexc.Forbidden, lambda: ro.create_project(project=resourcemanager_v3.Project(
        project_id="canopy-ro-%s" % RUN, parent=FOLDER), timeout=CALL_TIMEOUT), status="PERMISSION_DENIED", http=403)
    expect(e.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "reason %s" % e.reason)


# ------------------------------------------------------------------ projects

@check
def create_project_long_running():
    pid = CTX["pid"]
    before = methods()
    control("POST", "/_fake/config", {"create_polls": 3})
    try:
        p = new_project(pid, labels={"canopy-tenant": "t1"}, display="canopy t1")
    finally:
        control("POST", "/_fake/config", {"create_polls": 1})
    expect(p.project_id == pid and p.parent == FOLDER, "created %s under %s" % (p.project_id, p.parent))
    expect(p.name.startswith("projects/") and p.name[len("projects/"):].isdigit(), "name is projects/<number>")
    expect(p.state == resourcemanager_v3.Project.State.ACTIVE, "state %s" % p.state)
    expect(dict(p.labels) == {"canopy-tenant": "t1"} and p.display_name == "canopy t1", "labels and name kept")
    after = methods()
    expect(after.get("GetOperation", 0) - before.get("GetOperation", 0) == 3, "the client polled the pending "
           "operation until done: %d polls" % (after.get("GetOperation", 0) - before.get("GetOperation", 0)))
    ops = [o for o in state()["operations"] if o["type"] == "CreateProjectMetadata"]
    expect(ops and ops[-1]["done"] and ops[-1]["name"].startswith("operations/cp."), "operation %s" % ops[-1:])
    CTX["name"] = p.name


@check
def create_duplicate_conflict():
    pid = CTX["pid"]
    raises(gexc.Conflict, lambda: projects().create_project(project=resourcemanager_v3.Project(
        project_id=pid, parent=FOLDER), timeout=CALL_TIMEOUT), status="ALREADY_EXISTS", http=409)
    control("POST", "/_fake/foreign-ids", {"projectId": "someone-elses-%s" % RUN})
    raises(gexc.Conflict, lambda: projects().create_project(project=resourcemanager_v3.Project(
        project_id="someone-elses-%s" % RUN, parent=FOLDER), timeout=CALL_TIMEOUT), status="ALREADY_EXISTS")
    raises(gexc.Forbidden, lambda: projects().get_project(name="projects/someone-elses-%s" % RUN,
                                                          timeout=CALL_TIMEOUT), status="PERMISSION_DENIED")


@check
def create_refuses_bad_requests():
    pc = projects()
    for bad in ("Upper-case-id1", "short", "ends-with-hyphen-", "1starts-with-digit", "has-google-in-it",
                "x" * 31):
        raises(gexc.BadRequest, lambda: pc.create_project(project=resourcemanager_v3.Project(
            project_id=bad, parent=FOLDER), timeout=CALL_TIMEOUT), status="INVALID_ARGUMENT", http=400)
    raises(gexc.BadRequest, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id="canopy-lbl-%s" % RUN, parent=FOLDER, labels={"Bad Key": "x"}), timeout=CALL_TIMEOUT),
        status="INVALID_ARGUMENT")
    raises(gexc.Forbidden, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id="canopy-nofolder-%s" % RUN, parent="folders/999"), timeout=CALL_TIMEOUT),
        status="PERMISSION_DENIED", http=403)
    expect(not [p for p in state()["projects"] if "lbl" in p["projectId"] or "nofolder" in p["projectId"]],
           "nothing created")


@check
def get_project_by_id_and_number():
    pc = projects()
    by_id = pc.get_project(name="projects/" + CTX["pid"], timeout=CALL_TIMEOUT)
    by_number = pc.get_project(name=CTX["name"], timeout=CALL_TIMEOUT)
    expect(by_id.name == CTX["name"] == by_number.name and by_number.project_id == CTX["pid"], "same project")
    expect(by_id.create_time and by_id.etag, "createTime and etag")
    raises(gexc.Forbidden, lambda: pc.get_project(name="projects/no-such-project-%s" % RUN, timeout=CALL_TIMEOUT),
           status="PERMISSION_DENIED", http=403)


@check
def list_and_search_projects():
    pc = projects()
    listed = list(pc.list_projects(parent=FOLDER, timeout=CALL_TIMEOUT))
    expect([p.project_id for p in listed] == [CTX["pid"]], "list: %s" % [p.project_id for p in listed])
    found = list(pc.search_projects(query="id:%s" % CTX["pid"], timeout=CALL_TIMEOUT))
    expect([p.name for p in found] == [CTX["name"]], "search by id: %s" % [p.name for p in found])
    by_label = list(pc.search_projects(query="labels.canopy-tenant:t1", timeout=CALL_TIMEOUT))
    expect([p.project_id for p in by_label] == [CTX["pid"]], "search by label")
    none = list(pc.search_projects(query="id:nothing-like-this", timeout=CALL_TIMEOUT))
    expect(none == [], "no match: empty")
    for i in range(3):
        new_project("canopy-pg%d-%s" % (i, RUN))
    control("POST", "/_fake/config", {"page_size": 2})
    try:
        pages = list(pc.list_projects(parent=FOLDER, timeout=CALL_TIMEOUT).pages)
    finally:
        control("POST", "/_fake/config", {"page_size": 100})
    expect(len(pages) == 2 and sum(len(p.projects) for p in pages) == 4, "paged: %s"
           % [len(p.projects) for p in pages])


@check
def update_project_labels():
    pc = projects()
    op = pc.update_project(project=resourcemanager_v3.Project(name=CTX["name"], labels={"canopy-tenant": "t1",
                                                                                       "env": "test"}),
                           update_mask=field_mask_pb2.FieldMask(paths=["labels"]), timeout=CALL_TIMEOUT)
    p = op.result(timeout=30, polling=POLL)
    expect(dict(p.labels) == {"canopy-tenant": "t1", "env": "test"} and p.display_name == "canopy t1",
           "labels updated, name kept")


# ------------------------------------------------------------------ IAM

@check
def iam_get_and_set():
    pc = projects()
    pol = policy_of(pc, CTX["name"])
    expect(members(pol, "roles/owner") == ["serviceAccount:" + KEY_INFO["client_email"]], "creator is owner")
    expect(pol.etag and pol.version in (1, 3), "etag and version")
    pol.bindings.add(role="roles/viewer", members=["user:alice@example.com"])
    new = pc.set_iam_policy(request={"resource": CTX["name"], "policy": pol}, timeout=CALL_TIMEOUT)
    expect(new.etag != pol.etag, "a new etag")
    again = policy_of(pc, "projects/" + CTX["pid"])
    expect(members(again, "roles/viewer") == ["user:alice@example.com"], "alice is viewer")
    expect(again.etag == new.etag, "read back the same etag")
    CTX["stale"] = pol


@check
def iam_stale_etag_aborted_then_retry():
    pc = projects()
    stale = CTX["stale"]
    stale.bindings.add(role="roles/viewer", members=["user:bob@example.com"])
    before = policy_of(pc, CTX["name"])
    e = raises(gexc.Conflict, lambda: pc.set_iam_policy(request={"resource": CTX["name"], "policy": stale},
                                                        timeout=CALL_TIMEOUT), status="ABORTED", http=409)
    expect("concurrent policy changes" in e.message, "message: %s" % e.message[:200])
    expect(policy_of(pc, CTX["name"]).etag == before.etag, "nothing written")
    # the read-modify-write retry Google asks for
    for attempt in range(5):
        pol = policy_of(pc, CTX["name"])
        for b in pol.bindings:
            if b.role == "roles/viewer" and "user:bob@example.com" not in b.members:
                b.members.append("user:bob@example.com")
        try:
            pc.set_iam_policy(request={"resource": CTX["name"], "policy": pol}, timeout=CALL_TIMEOUT)
            break
        except gexc.Conflict:
            time.sleep(0.1 * 2 ** attempt)
    else:
        raise Failed("the retry never succeeded")
    expect(members(policy_of(pc, CTX["name"]), "roles/viewer") == ["user:alice@example.com", "user:bob@example.com"],
           "alice and bob are viewers")


@check
def iam_refuses_bad_members():
    pc = projects()
    for role, member in (("roles/viewer", "allUsers"), ("roles/viewer", "alice@example.com"),
                         ("roles/viewer", "user:not-an-email"), ("roles/not_a_role", "user:carol@example.com"),
                         ("roles/owner", "user:carol@example.com")):
        pol = policy_of(pc, CTX["name"])
        pol.bindings.add(role=role, members=[member])
        raises(gexc.BadRequest, lambda: pc.set_iam_policy(request={"resource": CTX["name"], "policy": pol},
                                                          timeout=CALL_TIMEOUT), status="INVALID_ARGUMENT", http=400)
    raises(gexc.Forbidden, lambda: policy_of(pc, "projects/no-such-project-%s" % RUN), status="PERMISSION_DENIED")


@check
def iam_conditional_binding_version_3():
    pc = projects()
    pol = policy_of(pc, CTX["name"])
    pol.version = 3
    pol.bindings.add(role="roles/editor", members=["group:ops@example.com"],
                     condition={"title": "until 2030", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')"})
    out = pc.set_iam_policy(request={"resource": CTX["name"], "policy": pol}, timeout=CALL_TIMEOUT)
    expect(out.version == 3, "version 3 with a condition")
    v3 = policy_of(pc, CTX["name"])
    cond = [b for b in v3.bindings if b.role == "roles/editor"]
    expect(cond and cond[0].condition.title == "until 2030", "condition read back at version 3")
    # remove it again (allowed at version 3 only)
    keep = [b for b in v3.bindings if b.role != "roles/editor"]
    del v3.bindings[:]
    v3.bindings.extend(keep)
    pc.set_iam_policy(request={"resource": CTX["name"], "policy": v3}, timeout=CALL_TIMEOUT)
    expect(policy_of(pc, CTX["name"]).version == 1, "back to version 1")


# ------------------------------------------------------------------ Cloud Asset

@check
def search_all_resources_seeded():
    control("POST", "/_fake/resources", [
        {"project": CTX["pid"], "assetType": "storage.googleapis.com/Bucket",
         "name": "//storage.googleapis.com/bucket-%s" % RUN, "location": "us", "labels": {"env": "test"}},
        {"project": CTX["pid"], "assetType": "compute.googleapis.com/Instance", "location": "europe-west1-b"}])
    ac = assets()
    got = list(ac.search_all_resources(request={"scope": "projects/" + CTX["pid"], "page_size": 50},
                                       timeout=CALL_TIMEOUT))
    types = sorted(r.asset_type for r in got)
    expect(types == ["cloudresourcemanager.googleapis.com/Project", "compute.googleapis.com/Instance",
                     "storage.googleapis.com/Bucket"], "types %s" % types)
    bucket = [r for r in got if r.asset_type == "storage.googleapis.com/Bucket"][0]
    expect(bucket.name == "//storage.googleapis.com/bucket-%s" % RUN and bucket.project == CTX["name"]
           and bucket.location == "us" and dict(bucket.labels) == {"env": "test"}
           and bucket.parent_full_resource_name.endswith(CTX["name"]), "bucket fields")
    only = list(ac.search_all_resources(request={"scope": CTX["name"],
                                                 "asset_types": ["storage.googleapis.com/Bucket"]},
                                        timeout=CALL_TIMEOUT))
    expect([r.name for r in only] == [bucket.name], "filtered by type")
    not_project = list(ac.search_all_resources(request={
        "scope": CTX["name"], "asset_types": ["compute.googleapis.com.*", "storage.googleapis.com.*"]},
        timeout=CALL_TIMEOUT))
    expect(len(not_project) == 2, "regex types: %d" % len(not_project))
    pages = list(ac.search_all_resources(request={"scope": CTX["name"], "page_size": 1},
                                         timeout=CALL_TIMEOUT).pages)
    expect(len(pages) == 3, "paged one by one: %d pages" % len(pages))
    raises(gexc.BadRequest, lambda: list(ac.search_all_resources(request={
        "scope": CTX["name"], "asset_types": ["nothing.googleapis.com/Nope"]}, timeout=CALL_TIMEOUT)),
        status="INVALID_ARGUMENT")
    raises(gexc.Forbidden, lambda: list(ac.search_all_resources(request={
        "scope": "projects/no-such-project-%s" % RUN}, timeout=CALL_TIMEOUT)), status="PERMISSION_DENIED")


# ------------------------------------------------------------------ faults and limits

@check
def unavailable_503_retried():
    before = state()["requests"]["faults_applied"]
    control("POST", "/_fake/faults", {"path_contains": "/v3/projects/" + CTX["pid"], "method": "GET",
                                      "status": 503, "times": 2})
    p = projects().get_project(name="projects/" + CTX["pid"], timeout=CALL_TIMEOUT)
    s = state()
    expect(p.project_id == CTX["pid"], "got the project after the retries")
    expect(s["requests"]["faults_applied"] == before + 2 and not s["faults"], "two 503s served")


@check
def too_many_requests_429_not_retried():
    control("POST", "/_fake/faults", {"path_contains": "/v3/projects/" + CTX["pid"], "method": "GET",
                                      "status": 429, "retry_after": 1})
    raises(gexc.TooManyRequests, lambda: projects().get_project(name="projects/" + CTX["pid"],
                                                                timeout=CALL_TIMEOUT),
           status="RESOURCE_EXHAUSTED", http=429)
    expect(not state()["faults"], "fault used")


@check
def token_endpoint_503_retried():
    control("POST", "/_fake/faults", {"path_contains": "/token", "method": "POST", "status": 503})
    c = creds([SCOPE])
    c.refresh(TimedRequest())
    expect(c.token and not state()["faults"], "token after google-auth's retry")


@check
def rate_limit_search():
    control("POST", "/_fake/limits", {"enabled": True, "search": {"per_second": 2, "per_minute": 240}})
    pc = projects()
    try:
        def burst():
            for _ in range(5):
                list(pc.search_projects(query="id:%s" % CTX["pid"], timeout=CALL_TIMEOUT))
        e = raises(gexc.TooManyRequests, burst, status="RESOURCE_EXHAUSTED", http=429)
        expect("Quota exceeded" in e.message and e.reason == "RATE_LIMIT_EXCEEDED",
               "quota message and ErrorInfo: %s %s" % (e.message[:120], e.reason))
    finally:
        control("POST", "/_fake/limits", {"enabled": False})


@check
def lost_create_answer():
    pid = "canopy-lost-%s" % RUN
    control("POST", "/_fake/faults", {"path_contains": "/v3/projects", "method": "POST", "lost": True})
    pc = projects()
    raises(requests.exceptions.ConnectionError, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id=pid, parent=FOLDER, labels={"canopy-tenant": "lost"}), timeout=CALL_TIMEOUT))
    expect(state()["requests"]["lost"] == 1, "one answer lost")
    # the create was applied: a retry meets 409, and a get shows it is ours (the adapter's "adopt" path)
    raises(gexc.Conflict, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id=pid, parent=FOLDER), timeout=CALL_TIMEOUT), status="ALREADY_EXISTS")
    p = pc.get_project(name="projects/" + pid, timeout=CALL_TIMEOUT)
    expect(p.parent == FOLDER and p.labels.get("canopy-tenant") == "lost", "adoptable")


@check
def delayed_answer_times_out():
    control("POST", "/_fake/faults", {"path_contains": "/v3/projects/" + CTX["pid"], "method": "GET",
                                      "delay_ms": 2500})
    t = time.monotonic()
    raises(requests.exceptions.Timeout, lambda: projects().get_project(name="projects/" + CTX["pid"], timeout=1))
    expect(time.monotonic() - t < 2.4, "the client gave up after its timeout")
    expect(projects().get_project(name="projects/" + CTX["pid"], timeout=CALL_TIMEOUT).project_id == CTX["pid"],
           "the next call works")


@check
def project_quota_in_operation():
    control("POST", "/_fake/config", {"project_quota": len(state()["projects"])})
    try:
        pc = projects()
        op = pc.create_project(project=resourcemanager_v3.Project(project_id="canopy-quota-%s" % RUN,
                                                                  parent=FOLDER), timeout=CALL_TIMEOUT)
        raises(gexc.ResourceExhausted, lambda: op.result(timeout=30, polling=POLL))
    finally:
        control("POST", "/_fake/config", {"project_quota": None})
    expect(not [p for p in state()["projects"] if p["projectId"] == "canopy-quota-%s" % RUN], "not created")


# ------------------------------------------------------------------ delete

@check
def delete_blocked_by_lien():
    control("POST", "/_fake/liens", {"project": CTX["pid"], "origin": "xpn.googleapis.com"})
    try:
        e = raises(gexc.BadRequest, lambda: projects().delete_project(name=CTX["name"], timeout=CALL_TIMEOUT),
                   status="FAILED_PRECONDITION", http=400)
        expect("lien" in e.message, "message names the lien: %s" % e.message[:200])
    finally:
        control("POST", "/_fake/liens", {"project": CTX["pid"], "remove": True})


@check
def delete_project_state():
    pc = projects()
    p = pc.delete_project(name=CTX["name"], timeout=CALL_TIMEOUT).result(timeout=30, polling=POLL)
    expect(p.state == resourcemanager_v3.Project.State.DELETE_REQUESTED, "operation answers %s" % p.state)
    got = pc.get_project(name="projects/" + CTX["pid"], timeout=CALL_TIMEOUT)
    expect(got.state == resourcemanager_v3.Project.State.DELETE_REQUESTED and got.delete_time,
           "get: %s with deleteTime" % got.state)
    active = [x.project_id for x in pc.list_projects(parent=FOLDER, timeout=CALL_TIMEOUT)]
    expect(CTX["pid"] not in active, "not listed without show_deleted")
    shown = [x.project_id for x in pc.list_projects(request={"parent": FOLDER, "show_deleted": True},
                                                    timeout=CALL_TIMEOUT)]
    expect(CTX["pid"] in shown, "listed with show_deleted")
    again = pc.delete_project(name=CTX["name"], timeout=CALL_TIMEOUT).result(timeout=30, polling=POLL)
    expect(again.state == resourcemanager_v3.Project.State.DELETE_REQUESTED, "deleting again is a no-op")
    raises(gexc.Conflict, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id=CTX["pid"], parent=FOLDER), timeout=CALL_TIMEOUT), status="ALREADY_EXISTS")


@check
def undelete_then_purge():
    pc = projects()
    p = pc.undelete_project(name=CTX["name"], timeout=CALL_TIMEOUT).result(timeout=30, polling=POLL)
    expect(p.state == resourcemanager_v3.Project.State.ACTIVE, "undeleted: %s" % p.state)
    pc.delete_project(name=CTX["name"], timeout=CALL_TIMEOUT).result(timeout=30, polling=POLL)
    control("POST", "/_fake/purge", {"project": CTX["pid"]})
    raises(gexc.Forbidden, lambda: pc.get_project(name=CTX["name"], timeout=CALL_TIMEOUT),
           status="PERMISSION_DENIED")
    raises(gexc.Conflict, lambda: pc.create_project(project=resourcemanager_v3.Project(
        project_id=CTX["pid"], parent=FOLDER), timeout=CALL_TIMEOUT), status="ALREADY_EXISTS")


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
