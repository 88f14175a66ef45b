#!/usr/bin/env python3
"""Checks daemonset/iam-policy.json: the invariants docs/security.md ("IAM") promises, and a table
of requests with the answer AWS's policy evaluation gives them.

moto cannot do this: it authorizes every EC2 call against the resource "*" with no condition
context (moto/core/authorization.py, moto/iam/access_control.py), so a policy scoped to ARNs and
tags is neither enforced nor refused faithfully there. The evaluator below implements the parts of
AWS's evaluation logic this policy uses (explicit Deny wins, then any Allow, else implicit deny;
the condition operators named in OPERATORS, with AWS's rules for missing keys); it refuses a policy
that uses anything else, so loosening or reshaping the policy makes this check fail until the table
and the document are updated with it.

  check_iam_policy.py POLICY_JSON SECURITY_MD
"""
import fnmatch
import json
import re
import sys

# Every key the ENI manager reads to decide that an ENI is its own or a NodeENI's.
OWNERSHIP_KEYS = ["eni-agent.io/*", "node.k8s.amazonaws.com/*", "kubernetes.io/cluster/*",
                  "Node", "NodeENI", "SubnetID"]
# Of those, the ones adoption of aws-multi-eni-controller's ENIs adds by CreateTags.
ADOPTION_KEYS = ["eni-agent.io/*", "node.k8s.amazonaws.com/*"]
ADOPTABLE = {"kubernetes.io/cluster/managed-by": "nodeeni-controller"}
READ_ONLY = re.compile(r"^ec2:Describe[A-Za-z]+$")
ENI = "arn:aws:ec2:us-east-1:111122223333:network-interface/eni-0123"
SUBNET = "arn:aws:ec2:us-east-1:111122223333:subnet/subnet-0123"
GROUP = "arn:aws:ec2:us-east-1:111122223333:security-group/sg-0123"
INSTANCE = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123"
VPC = "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0123"

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def as_list(v):
    return v if isinstance(v, list) else [v]


# ---------------------------------------------------------------- the evaluator

def like(pattern, value):
    return fnmatch.fnmatchcase(value, pattern)  # IAM's * and ?; no [] in IAM, none in this policy


def single(op, key, expected, ctx):
    """One condition key under a single-valued operator."""
    if key not in ctx:
        # AWS: a missing key makes a positive operator false and a negated one true.
        return op in ("StringNotEquals", "StringNotLike")
    value = ctx[key]
    if isinstance(value, list):
        raise SystemExit(f"{key} is multivalued: the policy must use ForAnyValue/ForAllValues")
    if op == "StringEquals":
        return value in expected
    if op == "StringNotEquals":
        return value not in expected
    if op == "StringLike":
        return any(like(p, value) for p in expected)
    if op == "StringNotLike":
        return not any(like(p, value) for p in expected)
    raise SystemExit(f"unsupported operator {op}")


def condition_holds(op, key, expected, ctx):
    expected = as_list(expected)
    if op == "Null":
        return (key not in ctx) == (expected[0] == "true")
    if op.startswith("ForAnyValue:"):
        values = ctx.get(key) or []
        return any(single(op.split(":", 1)[1], key, expected, {key: v}) for v in values)
    if op.startswith("ForAllValues:"):
        values = ctx.get(key) or []
        return all(single(op.split(":", 1)[1], key, expected, {key: v}) for v in values)
    return single(op, key, expected, ctx)


OPERATORS = {"StringEquals", "StringNotEquals", "StringLike", "Null", "ForAnyValue:StringLike"}


def applies(statement, action, resource, ctx):
    if not any(like(a, action) for a in as_list(statement["Action"])):
        return False
    if not any(like(r, resource) for r in as_list(statement["Resource"])):
        return False
    for op, keys in statement.get("Condition", {}).items():
        if op not in OPERATORS:
            raise SystemExit(f"{statement['Sid']}: operator {op} is not modelled here; add it")
        for key, expected in keys.items():
            if not condition_holds(op, key, expected, ctx):
                return False
    return True


def decide(policy, action, resource, ctx):
    matching = [s for s in policy["Statement"] if applies(s, action, resource, ctx)]
    if any(s["Effect"] == "Deny" for s in matching):
        return "deny"
    return "allow" if any(s["Effect"] == "Allow" for s in matching) else "deny"


def request(action, resource, tag_keys=None, request_tags=None, resource_tags=None,
            create_action=None):
    """The request context EC2 builds for one resource of a call."""
    ctx = {}
    if tag_keys is not None:
        ctx["aws:TagKeys"] = tag_keys
    for k, v in (request_tags or {}).items():
        ctx[f"aws:RequestTag/{k}"] = v
    for k, v in (resource_tags or {}).items():
        ctx[f"aws:ResourceTag/{k}"] = v
        ctx[f"ec2:ResourceTag/{k}"] = v
    if create_action:
        ctx["ec2:CreateAction"] = create_action
    return action, resource, ctx


OWNED = {"eni-agent.io/managed-by": "eni-agent", "eni-agent.io/instance-id": "i-0123"}
CREATE_TAGS = {"eni-agent.io/managed-by": "eni-agent", "eni-agent.io/instance-id": "i-0123",
               "Node": "node-1", "NodeENI": "multus", "SubnetID": "subnet-0123",
               "node.k8s.amazonaws.com/no_manage": "true", "Name": "nodeeni-multus-node-1-0123"}

# (what, request, expected decision)
TABLE = [
    ("Describe anything", request("ec2:DescribeNetworkInterfaces", "*"), "allow"),
    # CreateNetworkInterface: the ENI only with eni-agent's request tags; subnet and group plain.
    ("create an ENI with the ownership tags",
     request("ec2:CreateNetworkInterface", ENI, list(CREATE_TAGS), CREATE_TAGS), "allow"),
    ("create an ENI without tags", request("ec2:CreateNetworkInterface", ENI), "deny"),
    ("create an ENI with managed-by but no instance-id",
     request("ec2:CreateNetworkInterface", ENI, ["eni-agent.io/managed-by"],
             {"eni-agent.io/managed-by": "eni-agent"}), "deny"),
    ("create an ENI tagged managed-by=someone",
     request("ec2:CreateNetworkInterface", ENI, list(OWNED),
             {"eni-agent.io/managed-by": "someone", "eni-agent.io/instance-id": "i-0123"}),
     "deny"),
    ("the subnet of a create", request("ec2:CreateNetworkInterface", SUBNET), "allow"),
    ("the security group of a create", request("ec2:CreateNetworkInterface", GROUP), "allow"),
    ("a create touching another resource type", request("ec2:CreateNetworkInterface", VPC),
     "deny"),
    # Tagging at creation (the CreateTags authorization EC2 adds to a create with tags).
    ("tags at creation",
     request("ec2:CreateTags", ENI, list(CREATE_TAGS), CREATE_TAGS,
             create_action="CreateNetworkInterface"), "allow"),
    # The tagger: a pod's tags on any ENI; never an ownership key.
    ("a pod's tag on an ENI", request("ec2:CreateTags", ENI, ["Team", "eni-tagger.io/hash"]),
     "allow"),
    ("a pod's tag on a subnet", request("ec2:CreateTags", SUBNET, ["Team"]), "deny"),
    ("a pod's tag on an instance", request("ec2:CreateTags", INSTANCE, ["Team"]), "deny"),
    ("removing a pod's tag", request("ec2:DeleteTags", ENI, ["Team", "eni-tagger.io/hash"]),
     "allow"),
    ("DeleteTags without keys (deletes every tag)", request("ec2:DeleteTags", ENI), "deny"),
    # Adoption of aws-multi-eni-controller's ENIs, and only of those.
    ("adopting a nodeeni-controller ENI",
     request("ec2:CreateTags", ENI, list(OWNED) + ["node.k8s.amazonaws.com/no_manage"],
             resource_tags=dict(ADOPTABLE, Node="node-1", NodeENI="multus")), "allow"),
    ("NodeENI keys on a nodeeni-controller ENI",
     request("ec2:CreateTags", ENI, ["NodeENI"], resource_tags=ADOPTABLE), "deny"),
    ("re-labelling a nodeeni-controller ENI's cluster tag",
     request("ec2:CreateTags", ENI, ["kubernetes.io/cluster/managed-by"],
             resource_tags=ADOPTABLE), "deny"),
    ("deleting an ownership tag of a nodeeni-controller ENI",
     request("ec2:DeleteTags", ENI, ["eni-agent.io/managed-by"], resource_tags=ADOPTABLE),
     "deny"),
    ("managed-by on an ENI tagged by another cluster's controller",
     request("ec2:CreateTags", ENI, ["eni-agent.io/managed-by"],
             resource_tags={"kubernetes.io/cluster/managed-by": "someone-else"}), "deny"),
    # Detach, delete, modify: only ENIs that carry managed-by=eni-agent.
    ("deleting an owned ENI", request("ec2:DeleteNetworkInterface", ENI, resource_tags=OWNED),
     "allow"),
    ("detaching an owned ENI", request("ec2:DetachNetworkInterface", ENI, resource_tags=OWNED),
     "allow"),
    ("attaching an owned ENI", request("ec2:AttachNetworkInterface", ENI, resource_tags=OWNED),
     "allow"),
    ("modifying an owned ENI",
     request("ec2:ModifyNetworkInterfaceAttribute", ENI, resource_tags=OWNED), "allow"),
    ("deleting a VPC CNI ENI",
     request("ec2:DeleteNetworkInterface", ENI,
             resource_tags={"node.k8s.amazonaws.com/instance_id": "i-0123"}), "deny"),
    ("detaching a VPC CNI ENI",
     request("ec2:DetachNetworkInterface", ENI,
             resource_tags={"node.k8s.amazonaws.com/instance_id": "i-0123"}), "deny"),
    ("deleting a nodeeni-controller ENI not yet adopted",
     request("ec2:DeleteNetworkInterface", ENI, resource_tags=ADOPTABLE), "deny"),
    ("the instance side of attach", request("ec2:AttachNetworkInterface", INSTANCE), "allow"),
    ("terminating an instance", request("ec2:TerminateInstances", INSTANCE), "deny"),
]
# Each ownership key, alone, outside creation: refused to CreateTags (the repro wrote
# them through a pod's annotation) and always refused to DeleteTags.
for key in ["eni-agent.io/managed-by", "eni-agent.io/instance-id", "node.k8s.amazonaws.com/no_manage",
            "node.k8s.amazonaws.com/instance_id", "kubernetes.io/cluster/my-cluster", "Node",
            "NodeENI", "SubnetID"]:
    TABLE.append((f"CreateTags {key} on an existing ENI", request("ec2:CreateTags", ENI, [key]),
                  "deny"))
    TABLE.append((f"CreateTags {key} among a pod's tags",
                  request("ec2:CreateTags", ENI, ["Team", key]), "deny"))
    TABLE.append((f"DeleteTags {key}", request("ec2:DeleteTags", ENI, [key], resource_tags=OWNED),
                  "deny"))


# ---------------------------------------------------------------- structure

def check_structure(policy, doc):
    sids = [s.get("Sid", "") for s in policy["Statement"]]
    check(len(set(sids)) == len(sids), f"Sids must be unique: {sids}")
    for s in policy["Statement"]:
        sid = s.get("Sid", "")
        check(re.fullmatch(r"[A-Z][A-Za-z0-9]{11,}", sid) is not None,
              f"statement without a descriptive Sid: {s}")
        check(f"`{sid}`" in doc, f"{sid} is not explained in docs/security.md")
        for action in as_list(s["Action"]):
            check("*" not in action, f"{sid}: wildcard action {action}")
        if s["Effect"] != "Allow":
            continue
        mutating = [a for a in as_list(s["Action"]) if not READ_ONLY.match(a)]
        if mutating:
            # Every mutating Allow names resource types; none is "*".
            for r in as_list(s["Resource"]):
                check(r != "*" and re.fullmatch(r"arn:aws:ec2:\*:\*:[a-z-]+/\*", r) is not None,
                      f"{sid}: mutating actions {mutating} on resource {r}")
        if any(a in mutating for a in ("ec2:DeleteNetworkInterface", "ec2:DetachNetworkInterface",
                                       "ec2:ModifyNetworkInterfaceAttribute")):
            if any("network-interface" in r for r in as_list(s["Resource"])):
                cond = s.get("Condition", {}).get("StringEquals", {})
                check(cond.get("aws:ResourceTag/eni-agent.io/managed-by") == "eni-agent",
                      f"{sid}: detach/delete/modify of ENIs without the managed-by condition")
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    create_denied = set()
    delete_denied = set()
    for s in denies:
        keys = as_list(s.get("Condition", {}).get("ForAnyValue:StringLike", {}).get("aws:TagKeys", []))
        if "ec2:CreateTags" in as_list(s["Action"]):
            create_denied.update(keys)
            # The adoption exemption covers only the keys adoption writes.
            exempt = s.get("Condition", {}).get("StringNotEquals", {})
            if any(k.startswith("aws:ResourceTag/") for k in exempt):
                check(set(keys) <= set(ADOPTION_KEYS),
                      f"{s['Sid']}: the adoption exemption covers {keys}, more than adoption needs")
        if "ec2:DeleteTags" in as_list(s["Action"]):
            delete_denied.update(keys)
    for key in OWNERSHIP_KEYS:
        check(key in create_denied, f"no Deny of CreateTags names {key}")
        check(key in delete_denied, f"no Deny of DeleteTags names {key}")


def main():
    policy = json.load(open(sys.argv[1]))
    doc = open(sys.argv[2]).read()
    check(policy.get("Version") == "2012-10-17", "Version must be 2012-10-17")
    check_structure(policy, doc)
    for what, (action, resource, ctx), want in TABLE:
        got = decide(policy, action, resource, ctx)
        check(got == want, f"{what}: {action} on {resource} is {got}, want {want}")
    if failures:
        print("iam-policy.json:", *failures, sep="\n  ")
        return 1
    print(f"iam-policy.json: {len(policy['Statement'])} statements, {len(TABLE)} requests as "
          "documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
