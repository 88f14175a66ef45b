#!/usr/bin/env python3
"""moto_server with ENI trunking, as EC2 has it for security groups for pods.

moto 5.2 ignores CreateNetworkInterface's InterfaceType and has no AssociateTrunkInterface. On EKS
the VPC resource controller creates a trunk ENI (InterfaceType=trunk) attached to the node, and one
branch ENI per pod, associated with the trunk by AssociateTrunkInterface; a branch has no
attachment of its own and DescribeNetworkInterfaces shows its InterfaceType as "branch". The agent
verifies the ENI that a pod's vpc.amazonaws.com/pod-eni annotation names against exactly that, so
the test stack has to show it. This module adds, before starting moto's own server:

  CreateNetworkInterface InterfaceType=interface|trunk|efa|efa-only   kept and shown by Describe
  AssociateTrunkInterface BranchInterfaceId, TrunkInterfaceId, VlanId  the branch shows "branch"

and, since moto 5.2 ignores it, ModifyNetworkInterfaceAttribute's Attachment.DeleteOnTermination
(with Attachment.AttachmentId), kept and shown by Describe as EC2 does.

Errors follow EC2: an unknown ENI is InvalidNetworkInterfaceID.NotFound; a trunk that is not of
type trunk, or a branch that is attached or already a branch, is InvalidParameterValue.
Usage: the same arguments as moto_server.
"""
import itertools
import sys

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto.server import main

CREATABLE_TYPES = ("interface", "trunk", "efa", "efa-only")
_association_ids = itertools.count(1)
_original_create = ElasticNetworkInterfaces.create_network_interface
_original_modify = ElasticNetworkInterfaces.modify_network_interface_attribute


def create_network_interface(self):
    wanted = self._get_param("InterfaceType") or "interface"
    if wanted not in CREATABLE_TYPES:
        raise EC2ClientError("InvalidParameterValue",
                             f"Value ({wanted}) for parameter interfaceType is invalid.")
    result = _original_create(self)
    result.result["NetworkInterface"].interface_type = wanted
    return result


def associate_trunk_interface(self):
    branch_id = self._get_param("BranchInterfaceId")
    trunk_id = self._get_param("TrunkInterfaceId")
    vlan = self._get_int_param("VlanId", 0)
    branch = self.ec2_backend.get_network_interface(branch_id)
    trunk = self.ec2_backend.get_network_interface(trunk_id)
    if trunk.interface_type != "trunk":
        raise EC2ClientError("InvalidParameterValue", f"{trunk_id} is not a trunk network interface.")
    if branch.interface_type != "interface" or branch.instance is not None:
        raise EC2ClientError("InvalidParameterValue",
                             f"{branch_id} cannot become a branch: it is attached or not a plain interface.")
    branch.interface_type = "branch"
    association = {
        "AssociationId": f"trunk-assoc-{next(_association_ids):017x}",
        "BranchInterfaceId": branch_id,
        "TrunkInterfaceId": trunk_id,
        "InterfaceProtocol": "VLAN",
        "VlanId": vlan,
    }
    return ActionResult({"InterfaceAssociation": association})


def modify_network_interface_attribute(self):
    wanted = self._get_param("Attachment.DeleteOnTermination")
    if wanted is not None:
        eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
        if eni.instance is None or eni.attachment_id != self._get_param("Attachment.AttachmentId"):
            raise EC2ClientError("InvalidAttachmentID.NotFound",
                                 f"The attachment ID for {eni.id} does not exist.")
        eni.delete_on_termination = str(wanted).lower() == "true"
    return _original_modify(self)


ElasticNetworkInterfaces.create_network_interface = create_network_interface
ElasticNetworkInterfaces.modify_network_interface_attribute = modify_network_interface_attribute
EC2Response.modify_network_interface_attribute = modify_network_interface_attribute
EC2Response.create_network_interface = create_network_interface
EC2Response.associate_trunk_interface = associate_trunk_interface

if __name__ == "__main__":
    main(sys.argv[1:])
