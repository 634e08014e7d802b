"""Proves the Azure fake (scripts/azure_fake.py) faithful enough for Canopy's Azure adapter
by driving it with Microsoft's own Python SDKs (azure-identity, azure-mgmt-subscription,
azure-mgmt-authorization, azure-mgmt-resource, msgraph-sdk). Only the fake's control API
(/_fake/...) is called by hand.

Usage (scripts/azure start prints the command and the values):
    python azure_fidelity.py BASE_URL CA_PATH TENANT CLIENT_ID CLIENT_SECRET

Prints one line per check, `PASS name` or `FAIL name: why`, and exits 0 only when every
check passed. It resets the fake first and leaves test data in it.
"""
import asyncio
import json
import signal
import ssl
import sys
import time
import traceback
import urllib.request
import uuid

ARM_SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CHECK_TIMEOUT = 90  # seconds for one check, whatever it does
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
BUILTINS = {"Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Reader": READER, "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"}

if len(sys.argv) != 6:
    sys.exit("usage: azure_fidelity.py BASE_URL CA_PATH TENANT CLIENT_ID CLIENT_SECRET")
BASE, CA, TENANT, CLIENT_ID, SECRET = sys.argv[1:]
BASE = BASE.rstrip("/")

from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError,  # noqa: E402
                                   ResourceExistsError, ResourceNotFoundError)
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.mgmt.authorization import AuthorizationManagementClient  # noqa: E402
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters  # noqa: E402
from azure.mgmt.resource.resources import ResourceManagementClient  # noqa: E402
from azure.mgmt.subscription import SubscriptionClient  # noqa: E402
from azure.mgmt.subscription.models import (PutAliasRequest, PutAliasRequestAdditionalProperties,  # noqa: E402
                                            PutAliasRequestProperties)

SSL = ssl.create_default_context(cafile=CA)
# every SDK client: the fake as ARM, its CA, no 30 s LRO wait, and bounded network waits
ARM_KW = dict(base_url=BASE, polling_interval=0, connection_verify=CA, connection_timeout=10, read_timeout=30,
              retry_backoff_max=5)
CRED = ClientSecretCredential(TENANT, CLIENT_ID, SECRET, authority=BASE, disable_instance_discovery=True,
                              connection_verify=CA)
SEEN = []  # (method, url, status, headers) of every ARM response, via raw_response_hook


def hook(response):
    r = response.http_response
    SEEN.append((response.http_request.method, response.http_request.url, r.status_code, dict(r.headers)))


def sub_client(**kw):
    return SubscriptionClient(CRED, raw_response_hook=hook, **dict(ARM_KW, **kw))


def auth_client(sub, **kw):
    return AuthorizationManagementClient(CRED, sub, raw_response_hook=hook, **dict(ARM_KW, **kw))


def res_client(sub):
    return ResourceManagementClient(CRED, sub, api_version="2021-04-01", raw_response_hook=hook, **ARM_KW)


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=SSL) as resp:
        return json.loads(resp.read() or b"{}")


def state():
    return control("GET", "/_fake/state")


class Failed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Failed(why)


def raises(exc_type, fn, code=None, status=None):
    """Calls fn, expecting exc_type (with error.code `code` / status `status` when given)."""
    try:
        fn()
    except exc_type as e:
        got = getattr(getattr(e, "error", None), "code", None)
        if code is not None and got != code:
            raise Failed("%s with code %r, expected %r: %s" % (type(e).__name__, got, code, str(e)[:200]))
        if status is not None and getattr(e, "status_code", None) != status:
            raise Failed("%s with status %r, expected %r" % (type(e).__name__, getattr(e, "status_code", None),
                                                               status))
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


def alias_request(name, billing, mg="/providers/Microsoft.Management/managementGroups/canopy"):
    return PutAliasRequest(properties=PutAliasRequestProperties(
        display_name=name, workload="Production", billing_scope=billing,
        additional_properties=PutAliasRequestAdditionalProperties(management_group_id=mg,
                                                                  tags={"canopy-tenant": name})))


def assignment_name(scope, role_guid, principal):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "canopy:%s|%s|%s" % (scope, role_guid, principal)))


def rd_id(sub, guid):
    return "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (sub, guid)


def seed_user(local):
    upn = "%s@canopy-fake.example" % local
    u = control("POST", "/_fake/users", {"userPrincipalName": upn, "mail": "%s.mail@canopy-fake.example" % local,
                                         "displayName": local.title()})["users"][0]
    return u


# ------------------------------------------------------------------ identity

@check
def setup():
    s = control("POST", "/_fake/reset")
    expect(s["tenantId"] == TENANT.lower(), "the fake serves tenant %s" % s["tenantId"])
    CTX["billing"] = s["billingScopes"][0]
    CTX["sp"] = s["servicePrincipalObjectId"]
    CTX["alice"] = seed_user("alice")
    CTX["bob"] = seed_user("bob")


@check
def token_client_credentials():
    arm = CRED.get_token(ARM_SCOPE)
    graph = CRED.get_token(GRAPH_SCOPE)
    expect(arm.token and graph.token and arm.token != graph.token, "two distinct tokens")
    expect(arm.expires_on > time.time() + 3000, "token lifetime about an hour")


@check
def token_wrong_secret():
    bad = ClientSecretCredential(TENANT, CLIENT_ID, SECRET + "x", authority=BASE, disable_instance_discovery=True,
                                 connection_verify=CA)
    e = raises(ClientAuthenticationError, lambda: bad.get_token(ARM_SCOPE))
    expect("AADSTS7000215" in str(e), "error names AADSTS7000215: %s" % str(e)[:200])


@check
def arm_refuses_graph_token():
    sc = sub_client(credential_scopes=[GRAPH_SCOPE])
    raises(ClientAuthenticationError, lambda: list(sc.subscriptions.list()), code="InvalidAuthenticationTokenAudience")


# ------------------------------------------------------------------ subscription aliases

@check
def alias_create_long_running():
    SEEN.clear()
    sc = sub_client()
    poller = sc.alias.begin_create("canopy-t1", alias_request("canopy-t1", CTX["billing"]))
    alias = poller.result(timeout=30)
    expect(alias.properties.provisioning_state == "Succeeded", "state %s" % alias.properties.provisioning_state)
    sub = alias.properties.subscription_id
    expect(sub, "a subscription id")
    calls = [(m, st) for m, u, st, h in SEEN if "/aliases/canopy-t1" in u]
    expect(calls[0] == ("PUT", 201) and calls[-1] == ("GET", 200) and len(calls) >= 3,
           "PUT 201 then GET polls, saw %s" % calls)
    expect(SEEN[0][3].get("Retry-After") == "1", "the 201 carries Retry-After")
    s = state()
    subs = [x for x in s["subscriptions"] if x["subscriptionId"] == sub]
    expect(subs and subs[0]["state"] == "Enabled" and subs[0]["managementGroupId"].endswith("/canopy"),
           "subscription recorded with its management group")
    CTX["sub"] = sub


@check
def alias_put_again_returns_it():
    sc = sub_client()
    n = len(state()["subscriptions"])
    alias = sc.alias.begin_create("canopy-t1", alias_request("canopy-t1", CTX["billing"])).result(timeout=30)
    expect(alias.properties.subscription_id == CTX["sub"], "same subscription")
    expect(len(state()["subscriptions"]) == n, "no new subscription")


@check
def alias_get():
    a = sub_client().alias.get("canopy-t1")
    expect(a.name == "canopy-t1" and a.properties.subscription_id == CTX["sub"], "alias as created")
    expect(a.properties.billing_scope == CTX["billing"], "billing scope kept")
    sub = sub_client().subscriptions.get(CTX["sub"])
    expect(sub.state == "Enabled" and sub.display_name == "canopy-t1", "subscription %s" % sub.state)


@check
def alias_refuses_unknown_billing_scope():
    sc = sub_client()
    unknown = "/providers/Microsoft.Billing/billingAccounts/nope/billingProfiles/p/invoiceSections/i"
    raises(ResourceNotFoundError, lambda: sc.alias.begin_create("canopy-x", alias_request("canopy-x", unknown)),
           code="BillingScopeNotFound")
    raises(HttpResponseError, lambda: sc.alias.begin_create("canopy-y", alias_request("canopy-y", "/not/a/scope")),
           code="InvalidBillingScope", status=400)
    expect(not [a for a in state()["aliases"] if a["name"] in ("canopy-x", "canopy-y")], "no alias recorded")


@check
def alias_create_location_polling():
    control("POST", "/_fake/config", {"alias_polling": "location", "alias_polls": 2, "alias_retry_after": 0})
    try:
        SEEN.clear()
        alias = sub_client().alias.begin_create("canopy-t2", alias_request("canopy-t2", CTX["billing"])).result(
            timeout=30)
    finally:
        control("POST", "/_fake/config", {"alias_polling": "body", "alias_polls": 1, "alias_retry_after": 1})
    expect(alias.properties.provisioning_state == "Succeeded", "state %s" % alias.properties.provisioning_state)
    ops = [st for m, u, st, h in SEEN if "/subscriptionOperations/" in u]
    expect(ops[:-1] == [202] * (len(ops) - 1) and ops[-1] == 200 and len(ops) >= 2, "operation polls %s" % ops)
    CTX["sub2"] = alias.properties.subscription_id


# ------------------------------------------------------------------ role definitions

@check
def role_definitions_by_name():
    control("POST", "/_fake/role-definitions", {"roleName": "Canopy Auditor", "description": "test custom role"})
    ac = auth_client(CTX["sub"])
    scope = "/subscriptions/%s" % CTX["sub"]
    for name, guid in BUILTINS.items():
        found = list(ac.role_definitions.list(scope, filter="roleName eq '%s'" % name))
        expect(len(found) == 1, "%s: %d found" % (name, len(found)))
        rd = found[0]
        expect(rd.name == guid and rd.id.endswith("/roleDefinitions/" + guid) and rd.role_name == name
               and rd.role_type == "BuiltInRole", "%s is %s %s" % (name, rd.name, rd.role_type))
    custom = list(ac.role_definitions.list(scope, filter="roleName eq 'Canopy Auditor'"))
    expect(len(custom) == 1 and custom[0].role_type == "CustomRole", "custom role found")
    expect(list(ac.role_definitions.list(scope, filter="roleName eq 'No Such Role'")) == [], "unknown: empty")
    CTX["custom_role"] = custom[0].name


# ------------------------------------------------------------------ role assignments

@check
def role_assignment_create():
    sub, pid = CTX["sub"], CTX["alice"]["id"]
    scope = "/subscriptions/%s" % sub
    name = assignment_name(scope, READER, pid)
    ra = auth_client(sub).role_assignments.create(scope, name, RoleAssignmentCreateParameters(
        role_definition_id=rd_id(sub, READER), principal_id=pid, principal_type="User"))
    expect(ra.name == name and ra.principal_id == pid and ra.scope == scope, "assignment as asked")
    expect(ra.role_definition_id.lower().endswith(READER), "role %s" % ra.role_definition_id)
    CTX["ra_name"] = name


@check
def role_assignment_same_name_again_is_ok():
    sub, pid = CTX["sub"], CTX["alice"]["id"]
    scope = "/subscriptions/%s" % sub
    SEEN.clear()
    ra = auth_client(sub).role_assignments.create(scope, CTX["ra_name"], RoleAssignmentCreateParameters(
        role_definition_id=rd_id(sub, READER), principal_id=pid, principal_type="User"))
    expect(ra.name == CTX["ra_name"] and SEEN[-1][2] == 200, "200 with the existing assignment")


@check
def role_assignment_exists_409():
    sub, pid = CTX["sub"], CTX["alice"]["id"]
    scope = "/subscriptions/%s" % sub
    ac = auth_client(sub)
    raises(ResourceExistsError, lambda: ac.role_assignments.create(scope, str(uuid.uuid4()),
                                                                   RoleAssignmentCreateParameters(
        role_definition_id=rd_id(sub, READER), principal_id=pid, principal_type="User")), code="RoleAssignmentExists")
    n = [a for a in state()["roleAssignments"] if a["properties"]["principalId"] == pid]
    expect(len(n) == 1, "%d assignments for the principal" % len(n))


@check
def role_assignment_unknown_principal():
    sub = CTX["sub"]
    ac = auth_client(sub)
    raises(HttpResponseError, lambda: ac.role_assignments.create(
        "/subscriptions/%s" % sub, str(uuid.uuid4()), RoleAssignmentCreateParameters(
            role_definition_id=rd_id(sub, READER), principal_id=str(uuid.uuid4()), principal_type="User")),
        code="PrincipalNotFound", status=400)


@check
def role_assignment_list_paging():
    sub = CTX["sub"]
    scope = "/subscriptions/%s" % sub
    ac = auth_client(sub)
    for i in range(4):
        u = seed_user("pager%d" % i)
        ac.role_assignments.create(scope, assignment_name(scope, CTX["custom_role"], u["id"]),
                                   RoleAssignmentCreateParameters(role_definition_id=rd_id(sub, CTX["custom_role"]),
                                                                  principal_id=u["id"], principal_type="User"))
    control("POST", "/_fake/config", {"page_size": 2})
    try:
        SEEN.clear()
        pages = [list(p) for p in ac.role_assignments.list_for_scope(scope, filter="atScope()").by_page()]
        mine = list(ac.role_assignments.list_for_scope(scope, filter="atScope() and assignedTo('%s')"
                                                       % CTX["alice"]["id"]))
    finally:
        control("POST", "/_fake/config", {"page_size": 100})
    want = [a["name"] for a in state()["roleAssignments"] if a["properties"]["scope"] == scope]
    got = [ra.name for p in pages for ra in p]
    expect(len(pages) >= 3 and sorted(got) == sorted(want), "%d pages, %d of %d" % (len(pages), len(got), len(want)))
    follow = [u for m, u, st, h in SEEN if "skiptoken" in u.lower()]
    expect(follow and all(u.startswith(BASE + "/") for u in follow), "nextLinks on the fake's address")
    expect([ra.name for ra in mine] == [CTX["ra_name"]], "assignedTo: %s" % [ra.name for ra in mine])
    expect(any(ra.principal_id == CTX["sp"] and ra.role_definition_id.endswith(BUILTINS["Owner"])
               for p in pages for ra in p), "the creating principal is Owner")


@check
def role_assignment_get_and_delete():
    sub = CTX["sub"]
    scope = "/subscriptions/%s" % sub
    ac = auth_client(sub)
    pid = CTX["bob"]["id"]
    name = assignment_name(scope, BUILTINS["Contributor"], pid)
    ac.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
        role_definition_id=rd_id(sub, BUILTINS["Contributor"]), principal_id=pid, principal_type="User"))
    got = ac.role_assignments.get(scope, name)
    expect(got.principal_id == pid, "get")
    deleted = ac.role_assignments.delete(scope, name)
    expect(deleted is not None and deleted.name == name, "delete answers 200 with the assignment")
    expect(ac.role_assignments.delete(scope, name) is None, "second delete answers 204")
    raises(ResourceNotFoundError, lambda: ac.role_assignments.get(scope, name), code="RoleAssignmentNotFound")


# ------------------------------------------------------------------ resources

@check
def resources_and_groups_list():
    sub = CTX["sub"]
    for rg, name in (("rg-a", "sa1"), ("rg-a", "sa2"), ("rg-b", "sa3")):
        control("POST", "/_fake/resources", {"subscriptionId": sub, "resourceGroup": rg, "name": name,
                                             "type": "Microsoft.Storage/storageAccounts", "kind": "StorageV2"})
    control("POST", "/_fake/resources", {"subscriptionId": sub, "resourceGroup": "rg-c"})
    control("POST", "/_fake/config", {"page_size": 2})
    try:
        SEEN.clear()
        rc = res_client(sub)
        resources = list(rc.resources.list())
        groups = list(rc.resource_groups.list())
    finally:
        control("POST", "/_fake/config", {"page_size": 100})
    expect(sorted(r.name for r in resources) == ["sa1", "sa2", "sa3"], "resources %s" % [r.name for r in resources])
    expect(sorted(g.name for g in groups) == ["rg-a", "rg-b", "rg-c"], "groups %s" % [g.name for g in groups])
    expect(resources[0].type == "Microsoft.Storage/storageAccounts" and resources[0].location, "resource fields")
    expect(len([1 for m, u, st, h in SEEN if "skiptoken" in u.lower()]) >= 2, "paged")
    h = SEEN[0][3]
    expect(h.get("x-ms-ratelimit-remaining-subscription-reads") and h.get("x-ms-request-id"),
           "ARM headers: %s" % sorted(h))


# ------------------------------------------------------------------ faults and limits

@check
def arm_429_retry_after():
    before = state()["requests"]["throttled"]
    control("POST", "/_fake/faults", {"path_contains": "/resourcegroups", "method": "GET", "status": 429,
                                      "retry_after": 1})
    t = time.monotonic()
    groups = list(res_client(CTX["sub"]).resource_groups.list())
    took = time.monotonic() - t
    expect(len(groups) == 3, "listed after the retry")
    expect(took >= 0.9, "waited Retry-After (%.2f s)" % took)
    s = state()
    expect(s["requests"]["throttled"] == before + 1 and not s["faults"], "one 429 served")


@check
def arm_503_retry():
    control("POST", "/_fake/faults", {"path_contains": "/roleDefinitions", "method": "GET", "status": 503,
                                      "retry_after": 1, "times": 2})
    found = list(auth_client(CTX["sub"]).role_definitions.list("/subscriptions/%s" % CTX["sub"],
                                                               filter="roleName eq 'Reader'"))
    expect(len(found) == 1 and not state()["faults"], "listed after two 503s")


@check
def arm_token_bucket_limit():
    before = state()["requests"]["throttled"]
    control("POST", "/_fake/limits", {"enabled": True, "reads": {"capacity": 2, "per_second": 2}})
    try:
        ac = auth_client(CTX["sub"])
        for _ in range(5):
            ac.role_assignments.get("/subscriptions/%s" % CTX["sub"], CTX["ra_name"])
    finally:
        control("POST", "/_fake/limits", {"enabled": False, "reads": {"capacity": 250, "per_second": 25}})
    expect(state()["requests"]["throttled"] > before, "the bucket ran dry and the SDK retried")


@check
def lost_role_assignment_put():
    sub = CTX["sub"]
    scope = "/subscriptions/%s" % sub
    ac = auth_client(sub)
    outcomes = []
    for deterministic in (True, False):
        u = seed_user("lost%d" % deterministic)
        name = assignment_name(scope, READER, u["id"]) if deterministic else str(uuid.uuid4())
        control("POST", "/_fake/faults", {"path_contains": "/roleAssignments/" + name, "method": "PUT",
                                          "lost": True})
        try:
            ra = ac.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
                role_definition_id=rd_id(sub, READER), principal_id=u["id"], principal_type="User"))
            outcomes.append("ok" if ra.name == name else "other")
        except ResourceExistsError as e:
            expect(e.error.code == "RoleAssignmentExists", "409 code %s" % e.error.code)
            outcomes.append("409")
        n = [a for a in state()["roleAssignments"] if a["properties"]["principalId"] == u["id"]]
        expect(len(n) == 1, "%d assignments after the lost answer" % len(n))
    s = state()
    expect(s["requests"]["lost"] == 2 and not s["faults"], "two answers lost")
    expect(all(o in ("ok", "409") for o in outcomes), "outcomes %s" % outcomes)


@check
def delayed_answer_read_timeout_retry():
    scope = "/subscriptions/%s" % CTX["sub"]
    control("POST", "/_fake/faults", {"path_contains": "/roleAssignments/" + CTX["ra_name"], "method": "GET",
                                      "delay_ms": 2500})
    ra = auth_client(CTX["sub"]).role_assignments.get(scope, CTX["ra_name"], read_timeout=1)
    expect(ra.name == CTX["ra_name"] and not state()["faults"], "got it on the retry")


# ------------------------------------------------------------------ cancel

@check
def cancel_refused_while_resources_exist():
    sc = sub_client()
    raises(HttpResponseError, lambda: sc.subscription.cancel(CTX["sub"]), code="SubscriptionNotEmpty", status=400)
    expect(sc.subscriptions.get(CTX["sub"]).state == "Enabled", "still enabled")


@check
def cancel_subscription():
    sub = CTX["sub"]
    for rg in ("rg-a", "rg-b", "rg-c"):
        control("POST", "/_fake/resources", {"subscriptionId": sub, "resourceGroup": rg, "remove": True})
    sc = sub_client()
    out = sc.subscription.cancel(sub)
    expect(out.subscription_id == sub, "cancel answers the id")
    expect(sc.subscriptions.get(sub).state == "Disabled", "disabled after cancel")
    pid = CTX["bob"]["id"]
    raises(ResourceExistsError, lambda: auth_client(sub).role_assignments.create(
        "/subscriptions/%s" % sub, str(uuid.uuid4()), RoleAssignmentCreateParameters(
            role_definition_id=rd_id(sub, READER), principal_id=pid, principal_type="User")),
        code="ReadOnlyDisabledSubscription")


@check
def alias_delete():
    sc = sub_client()
    SEEN.clear()
    expect(sc.alias.delete("canopy-t1") is None, "delete")
    expect(sc.alias.delete("canopy-t1") is None, "delete again")
    expect([st for m, u, st, h in SEEN if m == "DELETE"] == [200, 204], "200 then 204")
    raises(ResourceNotFoundError, lambda: sc.alias.get("canopy-t1"))
    expect(sc.subscriptions.get(CTX["sub"]).subscription_id == CTX["sub"], "the subscription outlives its alias")


# ------------------------------------------------------------------ Microsoft Graph

def graph(fn, scopes=(GRAPH_SCOPE,)):
    """Runs `await fn(GraphServiceClient)` on a fresh event loop, bounded in time."""
    async def main():
        import httpx
        from azure.identity.aio import ClientSecretCredential as AsyncCredential
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider)
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph_core import GraphClientFactory

        cred = AsyncCredential(TENANT, CLIENT_ID, SECRET, authority=BASE, disable_instance_discovery=True,
                               connection_verify=CA)
        http = httpx.AsyncClient(verify=CA, timeout=20)
        try:
            auth = AzureIdentityAuthenticationProvider(cred, scopes=list(scopes))
            adapter = GraphRequestAdapter(auth, client=GraphClientFactory.create_with_default_middleware(client=http))
            adapter.base_url = BASE + "/v1.0"
            return await asyncio.wait_for(fn(GraphServiceClient(request_adapter=adapter)), 45)
        finally:
            await http.aclose()
            await cred.close()
    return asyncio.run(main())


def user_select():
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
    qp = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=["id", "userPrincipalName", "mail"])
    return RequestConfiguration(query_parameters=qp)


def users_filter(flt):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    qp = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(filter=flt,
                                                                   select=["id", "userPrincipalName", "mail"])
    return RequestConfiguration(query_parameters=qp)


@check
def graph_user_by_upn_and_id():
    alice = CTX["alice"]

    async def go(gc):
        a = await gc.users.by_user_id(alice["userPrincipalName"]).get(request_configuration=user_select())
        b = await gc.users.by_user_id(alice["id"]).get()
        return a, b
    a, b = graph(go)
    expect(a.id == alice["id"] and a.mail == alice["mail"] and a.user_principal_name == alice["userPrincipalName"],
           "by UPN")
    expect(b.id == alice["id"] and b.display_name == "Alice", "by id with default properties")


@check
def graph_users_by_filter():
    bob = CTX["bob"]

    async def go(gc):
        by_mail = await gc.users.get(request_configuration=users_filter("mail eq '%s'" % bob["mail"].upper()))
        by_upn = await gc.users.get(request_configuration=users_filter("userPrincipalName eq '%s'"
                                                                       % bob["userPrincipalName"]))
        none = await gc.users.get(request_configuration=users_filter("mail eq 'nobody@canopy-fake.example'"))
        return by_mail, by_upn, none
    by_mail, by_upn, none = graph(go)
    expect([u.id for u in by_mail.value] == [bob["id"]], "by mail (case-insensitive)")
    expect([u.id for u in by_upn.value] == [bob["id"]], "by UPN")
    expect(none.value == [], "no match: empty list")


@check
def graph_unknown_user_404():
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def go(gc):
        try:
            await gc.users.by_user_id("missing@canopy-fake.example").get()
        except ODataError as e:
            return e
        return None
    e = graph(go)
    expect(e is not None, "expected ODataError")
    expect(e.response_status_code == 404 and e.error.code == "Request_ResourceNotFound",
           "%s %s" % (e.response_status_code, e.error.code))


@check
def graph_refuses_arm_token():
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def go(gc):
        try:
            await gc.users.by_user_id(CTX["alice"]["id"]).get()
        except ODataError as e:
            return e
        return None
    e = graph(go, scopes=(ARM_SCOPE,))
    expect(e is not None and e.response_status_code == 401 and e.error.code == "InvalidAuthenticationToken",
           "expected 401 InvalidAuthenticationToken, got %r" % (e and e.response_status_code))


@check
def graph_429_retry_after():
    before = state()["requests"]["throttled"]
    control("POST", "/_fake/faults", {"path_contains": "/v1.0/users", "method": "GET", "status": 429,
                                      "retry_after": 1})

    async def go(gc):
        return await gc.users.by_user_id(CTX["alice"]["userPrincipalName"]).get(request_configuration=user_select())
    t = time.monotonic()
    u = graph(go)
    took = time.monotonic() - t
    expect(u.id == CTX["alice"]["id"], "user after the retry")
    expect(took >= 0.9, "waited Retry-After (%.2f s)" % took)
    expect(state()["requests"]["throttled"] == before + 1, "one 429 served")


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
