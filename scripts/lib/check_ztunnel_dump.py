#!/usr/bin/env python3
"""Checks a /config_dump (stdin) against the shape `istioctl ztunnel-config` decodes: the Go structs
of istio/istio istioctl/pkg/writer/ztunnel/configdump (api.go, certificates.go), field by field
with the JSON type Go's decoder needs (a wrong type makes json.Unmarshal fail; unknown fields are
skipped, as Go skips them). Prints {"ok": true} or {"ok": false, "errors": [...]}."""
import json, sys

S, I, B = "string", "int", "bool"

def lst(t): return ("list", t)
def mp(t): return ("map", t)
def opt(t): return ("opt", t)      # a Go pointer: null allowed

GATEWAY = {"destination": S, "hboneMtlsPort": I}
WORKLOAD = {"uid": S, "workloadIps": lst(S), "waypoint": opt(GATEWAY), "networkGateway": opt(GATEWAY), "protocol": S,
            "name": S, "namespace": S, "serviceAccount": S, "workloadName": S, "workloadType": S, "canonicalName": S,
            "canonicalRevision": S, "clusterId": S, "trustDomain": S, "locality": {"region": S, "zone": S, "subzone": S},
            "node": S, "network": S, "status": S, "hostname": S, "applicationTunnel": {"protocol": S, "port": opt(I)},
            "authorizationPolicies": lst(S)}
ENDPOINT = {"workloadUid": S, "service": S, "address": S, "port": mp(I)}
SERVICE = {"name": S, "namespace": S, "hostname": S, "vips": lst(S), "ports": mp(I),
           "loadBalancer": opt({"mode": S, "routingPreferences": lst(S), "healthPolicy": S}), "waypoint": opt(GATEWAY),
           "endpoints": mp(opt(ENDPOINT)), "subjectAltNames": lst(S), "ipFamilies": S}
STRINGMATCH = {"Exact": S, "Suffix": S, "Prefix": S, "Presence": "any"}
SAMATCH = {"namespace": S, "serviceAccount": S}
MATCH = {"namespaces": lst(STRINGMATCH), "notNamespaces": lst(STRINGMATCH), "principals": lst(STRINGMATCH),
         "notPrincipals": lst(STRINGMATCH), "sourceIps": lst(S), "notSourceIps": lst(S), "destinationIps": lst(S),
         "notDestinationIps": lst(S), "destinationPorts": lst(I), "notDestinationPorts": lst(I),
         "serviceAccounts": lst(SAMATCH), "notServiceAccounts": lst(SAMATCH)}
POLICY = {"name": S, "namespace": S, "scope": S, "action": S, "rules": lst(lst(lst(opt(MATCH))))}
CERT = {"pem": S, "serialNumber": S, "validFrom": S, "expirationTime": S}
CERTS = {"identity": S, "state": S, "certChain": lst(opt(CERT))}
CONN = {"src": S, "originalDst": S, "actualDst": S}
STATE = {"state": S, "connections": {"inbound": lst(CONN), "outbound": lst(CONN)},
         "info": {"name": S, "namespace": S, "trustDomain": S, "serviceAccount": S}}
DUMP = {"workloads": lst(opt(WORKLOAD)), "services": lst(opt(SERVICE)), "policies": lst(opt(POLICY)),
        "certificates": lst(opt(CERTS)), "workloadState": mp(STATE)}

errors = []

def check(value, shape, path):
    if value is None:
        return   # Go leaves the zero value
    if shape == "any":
        return
    if isinstance(shape, tuple):
        kind, inner = shape
        if kind == "opt":
            return check(value, inner, path)
        if kind == "list":
            if not isinstance(value, list):
                return errors.append("%s: want a list, got %s" % (path, type(value).__name__))
            for i, v in enumerate(value):
                check(v, inner, "%s[%d]" % (path, i))
            return
        if kind == "map":
            if not isinstance(value, dict):
                return errors.append("%s: want an object, got %s" % (path, type(value).__name__))
            for k, v in value.items():
                if inner == I or (isinstance(inner, tuple) and False):
                    pass
                check(v, inner, "%s.%s" % (path, k))
            return
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return errors.append("%s: want an object, got %s" % (path, type(value).__name__))
        for k, sub in shape.items():
            if k in value:
                check(value[k], sub, "%s.%s" % (path, k))
        return
    if shape == S and not isinstance(value, str):
        errors.append("%s: want a string, got %r" % (path, value))
    if shape == I and (isinstance(value, bool) or not isinstance(value, int)):
        errors.append("%s: want an integer, got %r" % (path, value))
    if shape == B and not isinstance(value, bool):
        errors.append("%s: want a bool, got %r" % (path, value))

dump = json.load(sys.stdin)
check(dump, DUMP, "$")
for key in ("workloads", "services", "policies", "certificates"):
    if key not in dump:
        errors.append("$.%s: missing" % key)
# Serial numbers are decimal in ztunnel's dump; scope is one of ztunnel's names.
for c in dump.get("certificates") or []:
    for cert in c.get("certChain") or []:
        if not str(cert.get("serialNumber", "")).isdigit():
            errors.append("serialNumber %r is not decimal" % cert.get("serialNumber"))
        if not str(cert.get("pem", "")).startswith("-----BEGIN CERTIFICATE-----"):
            errors.append("certificate without pem")
for p in dump.get("policies") or []:
    if p.get("scope") not in ("Global", "Namespace", "WorkloadSelector"):
        errors.append("policy %s: scope %r" % (p.get("name"), p.get("scope")))
print(json.dumps({"ok": not errors, "errors": errors}))
