"""A test fixture: an in-memory Open Service Broker (OSB API 2.x, built on
openbrokerapi) for the OSB adapter tests. Not for any other use.

Run by scripts/osb: python3 osb_broker.py --port PORT, with the basic auth
credentials in OSB_BROKER_USERNAME / OSB_BROKER_PASSWORD (or --username,
--password). One service `canopy-test-service` with one plan `canopy-test-plan`.
Provisioning and deprovisioning answer asynchronously (202, in progress for
ASYNC_SECONDS) when the platform accepts incomplete operations, synchronously
otherwise. Bindings are synchronous; their credentials name the instance and
binding.
"""
import argparse
import logging
import os
import threading
import time
import uuid

from flask import Flask
import openbrokerapi.settings
from openbrokerapi import api, errors
from openbrokerapi.catalog import ServicePlan
from openbrokerapi.service_broker import (Binding, BindState, DeprovisionServiceSpec, GetBindingSpec,
                                          GetInstanceDetailsSpec, LastOperation, OperationState,
                                          ProvisionedServiceSpec, ProvisionState, Service, ServiceBroker,
                                          UnbindSpec)

# Canopy is no Cloud Foundry: provision requests carry no organization/space guid
openbrokerapi.settings.DISABLE_SPACE_ORG_GUID_CHECK = True

SERVICE_ID, PLAN_ID = "canopy-test-service", "canopy-test-plan"
ASYNC_SECONDS = 0.5


class Broker(ServiceBroker):
    def __init__(self):
        self.lock = threading.Lock()
        # id -> {service_id, plan_id, parameters, context, op, op_kind, op_done_at}
        self.instances = {}
        self.bindings = {}  # binding id -> {instance_id, parameters, credentials}
        # (absent parameters are kept as {}: omitting them and sending {} is the same request)

    def catalog(self):
        return Service(id=SERVICE_ID, name="canopy-test", description="Canopy test service", bindable=True,
                       instances_retrievable=True, bindings_retrievable=True,
                       plans=[ServicePlan(id=PLAN_ID, name="default", description="The only plan")])

    def _instance(self, instance_id):
        """The instance (None when unknown), after settling its finished operation: a finished
        deprovisioning removes it."""
        inst = self.instances.get(instance_id)
        if inst and inst["op"] and time.monotonic() >= inst["op_done_at"]:
            inst["op"] = None
            if inst["op_kind"] == "deprovision":
                self._remove(instance_id)
                return None
        return inst

    def _remove(self, instance_id):
        del self.instances[instance_id]
        for binding_id in [b for b, v in self.bindings.items() if v["instance_id"] == instance_id]:
            del self.bindings[binding_id]

    def _start(self, inst, kind):
        inst.update(op="%s-%s" % (kind, uuid.uuid4()), op_kind=kind, op_done_at=time.monotonic() + ASYNC_SECONDS)
        return inst["op"]

    def provision(self, instance_id, details, async_allowed, **kwargs):
        with self.lock:
            inst = self._instance(instance_id)
            if inst:
                same = (inst["service_id"], inst["plan_id"], inst["parameters"]) == \
                    (details.service_id, details.plan_id, details.parameters or {})
                if not same or inst["op_kind"] == "deprovision" and inst["op"]:
                    raise errors.ErrInstanceAlreadyExists()  # 409
                if inst["op"]:  # the same provisioning, still in progress
                    if not async_allowed:
                        raise errors.ErrAsyncRequired()
                    return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, operation=inst["op"])
                return ProvisionedServiceSpec(ProvisionState.IDENTICAL_ALREADY_EXISTS)  # 200
            if details.service_id != SERVICE_ID:
                raise errors.ErrBadRequest("unknown service_id %s" % details.service_id)  # 400
            inst = self.instances[instance_id] = dict(
                service_id=details.service_id, plan_id=details.plan_id, parameters=details.parameters or {},
                context=details.context, op=None, op_kind=None, op_done_at=0)
            if async_allowed:
                return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, operation=self._start(inst, "provision"))
            return ProvisionedServiceSpec(ProvisionState.SUCCESSFUL_CREATED)  # 201

    def get_instance(self, instance_id, **kwargs):
        with self.lock:
            inst = self._instance(instance_id)
            if not inst or inst["op_kind"] == "provision" and inst["op"]:
                raise errors.ErrInstanceDoesNotExist()  # 404 (also while provisioning, as the spec says)
            return GetInstanceDetailsSpec(inst["service_id"], inst["plan_id"], parameters=inst["parameters"])

    def last_operation(self, instance_id, operation_data, **kwargs):
        with self.lock:
            inst = self._instance(instance_id)
            if not inst:
                raise errors.ErrInstanceDoesNotExist()  # 410: deprovisioned (or never there)
            kind = inst["op_kind"] or "provision"
            if inst["op"]:
                return LastOperation(OperationState.IN_PROGRESS, kind + " in progress")
            return LastOperation(OperationState.SUCCEEDED, kind + " succeeded")

    def deprovision(self, instance_id, details, async_allowed, **kwargs):
        with self.lock:
            inst = self._instance(instance_id)
            if not inst:
                raise errors.ErrInstanceDoesNotExist()  # 410
            if inst["op"]:  # the same deprovisioning again: its operation; else 422
                if inst["op_kind"] == "deprovision" and async_allowed:
                    return DeprovisionServiceSpec(is_async=True, operation=inst["op"])
                raise errors.ErrConcurrentInstanceAccess()
            if async_allowed:
                return DeprovisionServiceSpec(is_async=True, operation=self._start(inst, "deprovision"))
            self._remove(instance_id)
            return DeprovisionServiceSpec(is_async=False)  # 200

    def bind(self, instance_id, binding_id, details, async_allowed, **kwargs):
        with self.lock:
            inst = self._instance(instance_id)
            if not inst:
                raise errors.ErrBadRequest("service instance %s does not exist" % instance_id)  # 400
            if inst["op"]:
                raise errors.ErrConcurrentInstanceAccess()  # 422
            old = self.bindings.get(binding_id)
            if old:
                if (old["instance_id"], old["parameters"]) != (instance_id, details.parameters or {}):
                    raise errors.ErrBindingAlreadyExists()  # 409
                return Binding(BindState.IDENTICAL_ALREADY_EXISTS, credentials=old["credentials"])  # 200
            b = self.bindings[binding_id] = dict(instance_id=instance_id, parameters=details.parameters or {},
                                                 credentials={"instance_id": instance_id, "binding_id": binding_id})
            return Binding(BindState.SUCCESSFUL_BOUND, credentials=b["credentials"])  # 201

    def _binding(self, instance_id, binding_id):
        b = self.bindings.get(binding_id)
        if not b or b["instance_id"] != instance_id or not self._instance(instance_id):
            raise errors.ErrBindingDoesNotExist()  # GET: 404, DELETE: 410
        return b

    def get_binding(self, instance_id, binding_id, **kwargs):
        with self.lock:
            b = self._binding(instance_id, binding_id)
            return GetBindingSpec(credentials=b["credentials"], parameters=b["parameters"])

    def unbind(self, instance_id, binding_id, details, async_allowed, **kwargs):
        with self.lock:
            self._binding(instance_id, binding_id)
            del self.bindings[binding_id]
            return UnbindSpec(is_async=False)  # 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", default=os.environ.get("OSB_BROKER_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("OSB_BROKER_PASSWORD"))
    args = parser.parse_args()
    if not args.username or not args.password:
        parser.error("give the basic auth credentials (--username/--password or OSB_BROKER_USERNAME/_PASSWORD)")
    logging.basicConfig(level=logging.INFO)
    app = Flask(__name__)
    app.register_blueprint(api.get_blueprint(Broker(), api.BrokerCredentials(args.username, args.password),
                                             logging.getLogger("osb_broker")))
    app.run("127.0.0.1", args.port, threaded=True)


if __name__ == "__main__":
    main()
