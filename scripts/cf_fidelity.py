"""Proves the Cloud Foundry fake (scripts/cf_fake.py) faithful enough for Canopy's Cloud Foundry
adapter by driving it with the Python client cloudfoundry-client (its V3 API; `_create` where it
has no method, as docs/platforms/cloudfoundry-api.md section 5 says). Only the fake's control
API (/_fake/...) is called by hand.

Usage (scripts/cf start prints the command and the values):
    python cf_fidelity.py API_URL CA_PATH USERNAME PASSWORD ORG

Prints one line per check, `PASS name` or `FAIL name: why`, and exits 0 only when every check
passed. It resets the fake first and leaves test data in it. Every HTTP call has a timeout
(requests' default of none is replaced by 5 s to connect, 30 s to read) and every check a
deadline of CHECK_TIMEOUT seconds.
"""
import json
import secrets
import signal
import ssl
import sys
import time
import traceback
import urllib.request

if len(sys.argv) != 6:
    sys.exit("usage: cf_fidelity.py API_URL CA_PATH USERNAME PASSWORD ORG")
API, CA, USERNAME, PASSWORD, ORG = sys.argv[1:]
API = API.rstrip("/")

import requests  # noqa: E402
from cloudfoundry_client.client import CloudFoundryClient  # noqa: E402
from cloudfoundry_client.errors import InvalidStatusCode  # noqa: E402
from oauth2_client.credentials_manager import OAuthError  # noqa: E402

CHECK_TIMEOUT = 60  # seconds for one check, whatever it does
HTTP_TIMEOUT = (5, 30)

# cloudfoundry-client passes no timeout to requests (GET /, the token POST and its session alike):
# give every request one without changing what the client sends.
_request = requests.Session.request


def _request_with_timeout(self, method, url, **kw):
    if kw.get("timeout") is None:
        kw["timeout"] = HTTP_TIMEOUT
    return _request(self, method, url, **kw)


requests.Session.request = _request_with_timeout

SSL = ssl.create_default_context(cafile=CA)
RUN = secrets.token_hex(3)
ALICE = "alice-%s@canopy-fake.example" % RUN      # an LDAP user, known to UAA only at first
BOB = "bob-%s@canopy-fake.example" % RUN          # a UAA user with a password
BOB_PASSWORD = secrets.token_urlsafe(12)
CLIENT_ID, CLIENT_SECRET = "canopy-fidelity-%s" % RUN, secrets.token_urlsafe(16)


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=SSL) as resp:
        return json.loads(resp.read() or b"{}")


def state():
    return control("GET", "/_fake/state")


def requests_to(route):
    return state()["requests"]["routes"].get(route, 0)


class Failed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Failed(why)


def cf_error(fn, status, detail=None, code=None, title=None):
    """Calls fn, expecting InvalidStatusCode with `status` (and the CC error's detail/code/title)."""
    try:
        fn()
    except InvalidStatusCode as e:
        err = (e.body.get("errors") or [{}])[0] if isinstance(e.body, dict) else {}
        expect(e.status_code == status, "status %s, expected %s: %s" % (int(e.status_code), status, e.body))
        if detail is not None:
            expect(err.get("detail") == detail, "detail %r, expected %r" % (err.get("detail"), detail))
        if code is not None:
            expect(err.get("code") == code, "code %r, expected %r" % (err.get("code"), code))
        if title is not None:
            expect(err.get("title") == title, "title %r, expected %r" % (err.get("title"), title))
        expect(e.request_id, "the error names the X-VCAP-Request-ID")
        return err
    raise Failed("expected InvalidStatusCode %d, but the call succeeded" % status)


def wait_job(c, job_guid):
    return c.v3.jobs.wait_for_job_completion(job_guid, step=0.2, step_function=lambda s: s, timeout=20)


def admin_client():
    c = CloudFoundryClient(API, verify=CA)
    c.init_with_user_credentials(USERNAME, PASSWORD)
    return c


def create_role(c, type_, user, kind, target):
    """RoleManager has no create in 1.40.4: POST /v3/roles through the manager's _create."""
    return c.v3.roles._create({"type": type_, "relationships": {"user": {"data": user},
                                                                 kind: {"data": {"guid": target}}}})


CTX = {}
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def on_alarm(signum, frame):
    raise TimeoutError("check did not finish within %d s" % CHECK_TIMEOUT)


def run():
    signal.signal(signal.SIGALRM, on_alarm)
    failed = 0
    for fn in CHECKS:
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
    print("%d passed, %d failed" % (len(CHECKS) - failed, failed), file=sys.stderr)
    return failed


# ------------------------------------------------------------------ sign in

@check
def setup():
    s = control("POST", "/_fake/reset")
    expect(s["organization"] == ORG, "the fake holds organization %s" % s["organization"])
    control("POST", "/_fake/uaa-users", [{"username": ALICE, "origin": "ldap"},
                                         {"username": BOB, "origin": "uaa", "password": BOB_PASSWORD}])
    control("POST", "/_fake/clients", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})


@check
def sign_in():
    c = admin_client()
    expect(c.info.api_v3_url == API + "/v3", "V3 at %s" % c.info.api_v3_url)
    expect(c.info.authorization_endpoint == API + "/login", "token URL from links.login: %s"
           % c.info.authorization_endpoint)
    expect(c.refresh_token, "the password grant gave a refresh token")
    expect(state()["requests"]["grants"].get("password") == 1, "one password grant")
    CTX["c"] = c


@check
def sign_in_wrong_password():
    c = CloudFoundryClient(API, verify=CA)
    try:
        c.init_with_user_credentials(USERNAME, PASSWORD + "x")
    except OAuthError as e:
        expect(int(e.status_code) == 401 and e.error == "invalid_client" and e.error_description == "Bad credentials",
               "OAuthError %s %s %s" % (int(e.status_code), e.error, e.error_description))
        return
    raise Failed("signed in with a wrong password")


@check
def find_org():
    c = CTX["c"]
    org = c.v3.organizations.get_first(names=ORG)
    expect(org is not None and org["name"] == ORG, "found %s" % (org and org["name"]))
    again = c.v3.organizations.get_first(names=ORG.upper())
    expect(again is not None and again["guid"] == org["guid"], "names filter is case-insensitive")
    expect(list(c.v3.organizations.list(names=["no-such-org-" + RUN])) == [], "unknown name: empty list")
    expect(c.v3.organizations.get(org["guid"])["name"] == ORG, "get by guid")
    CTX["org"] = org["guid"]


# ------------------------------------------------------------------ spaces

@check
def create_space_find_by_name():
    c = CTX["c"]
    name = "canopy-t1-" + RUN
    sp = c.v3.spaces.create(name, CTX["org"])
    expect(sp["name"] == name and sp["relationships"]["organization"]["data"]["guid"] == CTX["org"], "as created")
    found = list(c.v3.spaces.list(names=[name], organization_guids=[CTX["org"]]))
    expect([s["guid"] for s in found] == [sp["guid"]], "found by name and organization: %d" % len(found))
    expect(c.v3.spaces.get(sp["guid"])["name"] == name, "get by guid")
    CTX["space"], CTX["space_name"] = sp["guid"], name


@check
def duplicate_space_name_refused():
    c = CTX["c"]
    cf_error(lambda: c.v3.spaces.create(CTX["space_name"].upper(), CTX["org"]), 422,
             "Name must be unique per organization", 10008, "CF-UnprocessableEntity")


# ------------------------------------------------------------------ users and roles

@check
def find_or_create_user():
    c = CTX["c"]
    expect(list(c.v3.users.list(usernames=[ALICE], origins=["ldap"])) == [],
           "a UAA user CC does not know yet is not listed")
    u = c.v3.users.create((ALICE, "ldap"))
    expect(u["username"] == ALICE and u["origin"] == "ldap" and u["guid"], "created %s" % dict(u))
    found = list(c.v3.users.list(usernames=[ALICE], origins=["ldap"]))
    expect([x["guid"] for x in found] == [u["guid"]], "listed after creation")
    cf_error(lambda: c.v3.users.create((ALICE, "ldap")), 422,
             "User with username '%s' and origin 'ldap' already exists." % ALICE)
    cf_error(lambda: c.v3.users.create((ALICE, "uaa")), 422,
             "Origin cannot be 'uaa' when creating a user by username")
    CTX["alice"] = u["guid"]


@check
def space_role_needs_org_role():
    c = CTX["c"]
    cf_error(lambda: create_role(c, "space_developer", {"guid": CTX["alice"]}, "space", CTX["space"]), 422,
             "Users cannot be assigned roles in a space if they do not have a role in that space's organization.")


@check
def org_user_then_space_developer():
    c = CTX["c"]
    org_role = create_role(c, "organization_user", {"guid": CTX["alice"]}, "organization", CTX["org"])
    expect(org_role["type"] == "organization_user"
           and org_role["relationships"]["organization"]["data"]["guid"] == CTX["org"]
           and org_role["relationships"]["space"]["data"] is None, "org role %s" % dict(org_role))
    sp_role = create_role(c, "space_developer", {"guid": CTX["alice"]}, "space", CTX["space"])
    expect(sp_role["type"] == "space_developer" and sp_role["relationships"]["space"]["data"]["guid"] == CTX["space"]
           and sp_role["relationships"]["organization"]["data"] is None, "space role %s" % dict(sp_role))
    CTX["org_role"], CTX["space_role"] = org_role["guid"], sp_role["guid"]


@check
def list_roles_include_user():
    c = CTX["c"]
    roles = list(c.v3.roles.list(space_guids=[CTX["space"]], types=["space_developer", "space_manager"],
                                 include="user", per_page=5000))
    expect([r["guid"] for r in roles] == [CTX["space_role"]], "space roles %s" % [r["guid"] for r in roles])
    expect(roles[0].user()["username"] == ALICE, "included user")
    org_roles = list(c.v3.roles.list(organization_guids=[CTX["org"]], user_guids=[CTX["alice"]], include="user"))
    expect([r["type"] for r in org_roles] == ["organization_user"], "org roles %s" % [r["type"] for r in org_roles])
    expect(org_roles[0].user()["origin"] == "ldap", "included user's origin")


@check
def duplicate_role_refused():
    c = CTX["c"]
    cf_error(lambda: create_role(c, "space_developer", {"guid": CTX["alice"]}, "space", CTX["space"]), 422,
             "User '%s' already has 'space_developer' role in space '%s'." % (ALICE, CTX["space_name"]),
             10008, "CF-UnprocessableEntity")
    cf_error(lambda: create_role(c, "organization_user", {"username": ALICE, "origin": "ldap"}, "organization",
                                 CTX["org"]), 422,
             "User '%s' already has 'organization_user' role in organization '%s'." % (ALICE, ORG))


@check
def org_user_kept_while_space_roles_remain():
    c = CTX["c"]
    cf_error(lambda: c.v3.roles.remove(CTX["org_role"]), 422,
             "Cannot delete organization_user role while user has roles in spaces in that organization.")


@check
def remove_space_role_then_org_role():
    c = CTX["c"]
    job = c.v3.roles.remove(CTX["space_role"])
    expect(job, "DELETE answered a job")
    done = wait_job(c, job)
    expect(done["state"] == "COMPLETE" and done["operation"] == "role.delete", "job %s %s" % (done["state"],
                                                                                              done["errors"]))
    cf_error(lambda: c.v3.roles.get(CTX["space_role"]), 404, "Role not found", 10010, "CF-ResourceNotFound")
    done = wait_job(c, c.v3.roles.remove(CTX["org_role"]))
    expect(done["state"] == "COMPLETE", "org role job %s" % done["state"])
    expect(list(c.v3.roles.list(user_guids=[CTX["alice"]])) == [], "no roles left")


@check
def roles_by_username():
    c = CTX["c"]
    org_role = create_role(c, "organization_user", {"username": BOB}, "organization", CTX["org"])
    bob = org_role["relationships"]["user"]["data"]["guid"]
    expect([u["guid"] for u in c.v3.users.list(usernames=[BOB])] == [bob], "CC user created with the role")
    sp_role = create_role(c, "space_auditor", {"username": BOB, "origin": "uaa"}, "space", CTX["space"])
    expect(sp_role["relationships"]["user"]["data"]["guid"] == bob, "space role by username")
    cf_error(lambda: create_role(c, "organization_user", {"username": "nobody-" + RUN}, "organization", CTX["org"]),
             422, "No user exists with the username 'nobody-%s'." % RUN)
    CTX["bob"] = bob


@check
def non_admin_is_refused():
    b = CloudFoundryClient(API, verify=CA)
    b.init_with_user_credentials(BOB, BOB_PASSWORD)
    expect([o["guid"] for o in b.v3.organizations.list()] == [CTX["org"]], "bob sees the org he is in")
    expect([s["guid"] for s in b.v3.spaces.list()] == [CTX["space"]], "bob sees his space only")
    cf_error(lambda: b.v3.spaces.create("bob-" + RUN, CTX["org"]), 403,
             "You are not authorized to perform the requested action", 10003, "CF-NotAuthorized")
    cf_error(lambda: b.v3.users.create("u-" + RUN), 403, code=10003)


@check
def client_credentials_org_manager():
    c = CTX["c"]
    create_role(c, "organization_manager", {"guid": CLIENT_ID}, "organization", CTX["org"])
    k = CloudFoundryClient(API, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, verify=CA)
    k.init_with_client_credentials()
    expect(k.refresh_token is None, "client credentials give no refresh token")
    sp = k.v3.spaces.create("canopy-cc-" + RUN, CTX["org"])
    expect(sp["guid"] in {s["guid"] for s in k.v3.spaces.list(organization_guids=[CTX["org"]])},
           "the org manager sees the space it made")
    done = wait_job(k, k.v3.spaces._remove(sp["guid"]))
    expect(done["state"] == "COMPLETE", "the org manager deleted it: %s" % done["state"])
    CTX["k"] = k


# ------------------------------------------------------------------ tenant contents

@check
def seeded_resources_listed_by_space():
    c = CTX["c"]
    other = c.v3.spaces.create("canopy-other-" + RUN, CTX["org"])["guid"]
    control("POST", "/_fake/resources", [
        {"type": "app", "space_guid": CTX["space"], "name": "web"},
        {"type": "route", "space_guid": CTX["space"], "host": "web-" + RUN},
        {"type": "service_instance", "space_guid": CTX["space"], "name": "db"},
        {"type": "service_instance", "space_guid": other, "name": "shared-in", "shared_to": [CTX["space"]]},
        {"type": "app", "space_guid": other, "name": "elsewhere"}])
    sg = [CTX["space"]]
    apps = list(c.v3.apps.list(space_guids=sg))
    expect([a["name"] for a in apps] == ["web"], "apps %s" % [a["name"] for a in apps])
    expect(c.v3.apps.len(space_guids=sg) == 1, "pagination.total_results")
    routes = list(c.v3.routes.list(space_guids=sg))
    expect([r["host"] for r in routes] == ["web-" + RUN] and routes[0]["url"].startswith("web-" + RUN + "."),
           "routes %s" % [r["url"] for r in routes])
    sis = list(c.v3.service_instances.list(space_guids=sg))
    expect(sorted(s["name"] for s in sis) == ["db", "shared-in"], "service instances %s" % [s["name"] for s in sis])
    own = [s["name"] for s in sis if s["relationships"]["space"]["data"]["guid"] == CTX["space"]]
    expect(own == ["db"], "the space's own instance tells from a shared-in one")
    CTX["other"] = other


@check
def pagination_follows_next():
    c = CTX["c"]
    for i in range(3):
        c.v3.spaces.create("canopy-page-%d-%s" % (i, RUN), CTX["org"])
    first = c.get(API + "/v3/spaces?organization_guids=%s&per_page=1" % CTX["org"]).json()
    total = first["pagination"]["total_results"]
    nxt = first["pagination"]["next"]["href"]
    expect(total >= 5 and first["pagination"]["total_pages"] == total, "pagination %s" % first["pagination"])
    expect(nxt.startswith(API + "/v3/spaces?") and "page=2" in nxt and "per_page=1" in nxt, "next %s" % nxt)
    before = requests_to("GET /v3/spaces")
    spaces = list(c.v3.spaces.list(organization_guids=[CTX["org"]], per_page=1))
    expect(len(spaces) == total and len({s["guid"] for s in spaces}) == total, "%d of %d" % (len(spaces), total))
    expect(requests_to("GET /v3/spaces") - before == total, "one request per page")


@check
def bad_queries_refused():
    c = CTX["c"]
    cf_error(lambda: list(c.v3.spaces.list(colour="blue")), 400, code=10005, title="CF-BadQueryParameter")
    cf_error(lambda: list(c.v3.roles.list(colour="blue")), 422, code=10008)
    cf_error(lambda: list(c.v3.spaces.list(per_page=5001)), 400,
             "The query parameter is invalid: Per page must be between 1 and 5000")
    cf_error(lambda: c.v3.spaces.get("no-such-space"), 404, "Space not found")
    cf_error(lambda: list(c.v3.users.list(origins=["uaa"])), 422,
             "Origins filter cannot be provided without usernames or partial_usernames filter.")


# ------------------------------------------------------------------ tokens, limits, faults

@check
def expired_token_refreshed():
    c = CTX["c"]
    before = state()["requests"]["grants"].get("refresh_token", 0)
    n = control("POST", "/_fake/expire-tokens", {})["expired"]["access"]
    expect(n >= 3, "%d access tokens expired" % n)
    expect(c.v3.organizations.get(CTX["org"])["name"] == ORG, "the call went through")
    expect(state()["requests"]["grants"].get("refresh_token", 0) == before + 1, "the client refreshed once")
    k = CTX["k"]
    cf_error(lambda: k.v3.organizations.get(CTX["org"]), 401, "Invalid Auth Token", 1000, "CF-InvalidAuthToken")


@check
def rate_limit_429():
    k = CloudFoundryClient(API, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, verify=CA)
    k.init_with_client_credentials()
    control("POST", "/_fake/limits", {"enabled": True, "general_limit": 3})
    try:
        r = k.get(API + "/v3/organizations/" + CTX["org"])
        expect(r.headers.get("X-RateLimit-Limit") == "3" and r.headers.get("X-RateLimit-Reset", "").isdigit(),
               "rate-limit headers %s" % {h: v for h, v in r.headers.items() if h.lower().startswith("x-ratelimit")})
        for _ in range(2):
            k.v3.organizations.get(CTX["org"])
        cf_error(lambda: k.v3.organizations.get(CTX["org"]), 429, "Rate Limit Exceeded", 10013,
                 "CF-RateLimitExceeded")
        for _ in range(5):
            r = CTX["c"].get(API + "/v3/organizations/" + CTX["org"])  # admins are not limited
        expect("X-RateLimit-Limit" not in r.headers, "no rate-limit headers for an admin")
    finally:
        control("POST", "/_fake/limits", {"enabled": False, "general_limit": 2000})


@check
def lost_answer_was_applied():
    c = CTX["c"]
    control("POST", "/_fake/faults", {"path_contains": "/v3/roles", "method": "POST", "lost": True})
    try:
        create_role(c, "space_manager", {"guid": CTX["bob"]}, "space", CTX["space"])
        raise Failed("the answer was not lost")
    except requests.exceptions.ConnectionError:
        pass
    cf_error(lambda: create_role(c, "space_manager", {"guid": CTX["bob"]}, "space", CTX["space"]), 422,
             "User '%s' already has 'space_manager' role in space '%s'." % (BOB, CTX["space_name"]))
    s = state()
    expect(s["requests"]["lost"] == 1 and not s["faults"], "one answer lost")
    expect(len([r for r in s["roles"] if r["type"] == "space_manager" and r["user_guid"] == CTX["bob"]]) == 1,
           "the role exists once")


@check
def space_delete_job_fails_while_broker_busy():
    c = CTX["c"]
    busy = control("POST", "/_fake/resources", {"type": "service_instance", "space_guid": CTX["other"],
                                                "name": "busy", "operation_in_progress": True})["resources"][0]
    done = wait_job(c, c.v3.spaces._remove(CTX["other"]))
    expect(done["state"] == "FAILED" and done["errors"][0]["code"] == 290008
           and done["errors"][0]["title"] == "CF-SpaceDeletionFailed"
           and "An operation for service instance busy is in progress." in done["errors"][0]["detail"],
           "job %s %s" % (done["state"], done["errors"]))
    expect(c.v3.spaces.get(CTX["other"])["guid"] == CTX["other"], "the space is still there")
    control("POST", "/_fake/resources", {"type": "service_instance", "guid": busy["guid"], "remove": True})


@check
def delete_space_follows_job():
    c = CTX["c"]
    job = c.v3.spaces._remove(CTX["space"])
    expect(job, "DELETE answered a job")
    first = c.v3.jobs.get(job)
    expect(first["state"] == "PROCESSING" and first["operation"] == "space.delete"
           and first["links"]["space"]["href"].endswith(CTX["space"]), "job while running: %s" % dict(first))
    done = wait_job(c, job)
    expect(done["state"] == "COMPLETE" and done["errors"] == [] and "space" not in done["links"],
           "job %s %s" % (done["state"], done["errors"]))
    cf_error(lambda: c.v3.spaces.get(CTX["space"]), 404, "Space not found", 10010, "CF-ResourceNotFound")
    s = state()
    sg = CTX["space"]
    expect(not [x for k in ("apps", "routes", "service_instances") for x in s[k] if x["space_guid"] == sg],
           "apps, routes and service instances deleted with it")
    expect(not [r for r in s["roles"] if r["space_guid"] == sg], "its roles deleted with it")
    expect(all(sg not in si["shared_to"] for si in s["service_instances"]), "shared-in instances unshared")
    expect(c.v3.service_instances.len(space_guids=[CTX["other"]]) == 1, "the shared instance stays in its space")


@check
def queued_503_then_retry():
    c = CTX["c"]
    control("POST", "/_fake/faults", {"path_contains": "/v3/organizations", "method": "GET", "status": 503,
                                      "retry_after": 1})
    errors, org = [], None
    for _ in range(3):   # the client does not retry: the caller does
        try:
            org = c.v3.organizations.get_first(names=ORG)
            break
        except InvalidStatusCode as e:
            errors.append(int(e.status_code))
            time.sleep(0.2)
    expect(errors == [503], "errors before success: %s" % errors)
    expect(org is not None and org["guid"] == CTX["org"], "found on the retry")
    expect(not state()["faults"], "the fault was used up")


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
