#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni::testing {

/// A stateful in-memory EC2 for unit tests of core logic: ENIs with tags and attachments on one
/// instance, subnets by Name tag, and a count of calls per action. It understands the filters
/// the agent uses (attachment.instance-id, network-interface-id, tag:<key>, vpc-id).
class FakeEc2 final : public Ec2Api {
 public:
  std::string instanceId = "i-0123456789abcdef0";
  std::string vpcId = "vpc-1";
  std::map<std::string, NetworkInterface> enis;
  std::vector<Subnet> subnets;
  std::map<std::string, int> calls;       // action -> count
  std::map<std::string, Error> failNext;  // action -> the error its next call returns
  int nextId = 1;
  std::vector<Tag> deleteRequests;  // every tag a DeleteTags named, in order
  /// Called at each CreateTags before it applies (a test notes what the world held then).
  std::function<void(const std::vector<std::string>&, const std::vector<Tag>&)> onCreateTags;
  /// Called with the action of every call, in order (a test notes the order of calls).
  std::function<void(const std::string&)> onCall;

  /// What untilCalls() answers: the client's rate limit as a test sets it.
  Duration hold{0};
  Duration untilCalls(int) const override { return hold; }

  int reads() const {
    int n = 0;
    for (const auto& [action, count] : calls) {
      if (action.rfind("Describe", 0) == 0) n += count;
    }
    return n;
  }
  int writes() const {
    int n = 0;
    for (const auto& [action, count] : calls) {
      if (action.rfind("Describe", 0) != 0) n += count;
    }
    return n;
  }
  static std::string tagOf(const NetworkInterface& e, const std::string& key) {
    for (const auto& t : e.tags) {
      if (t.key == key) return t.value;
    }
    return "";
  }
  /// Adds an ENI attached to the instance at `index`.
  NetworkInterface& addAttached(const std::string& id, std::int64_t index,
                                const std::string& subnet = "subnet-a") {
    NetworkInterface e;
    e.id = id;
    e.subnetId = subnet;
    e.vpcId = vpcId;
    e.status = "in-use";
    e.macAddress = macFor(id);
    e.privateIpAddress = "10.0.0." + std::to_string(10 + nextId++);
    e.privateIpAddresses = {e.privateIpAddress};
    e.attachment = EniAttachment{"attach-" + id, instanceId, index, "attached", index == 0};
    return enis[id] = e;
  }
  static std::string macFor(const std::string& id) {
    std::size_t h = std::hash<std::string>{}(id);
    char buf[32];
    std::snprintf(buf, sizeof buf, "02:00:00:%02x:%02x:%02x", unsigned(h & 0xff),
                  unsigned((h >> 8) & 0xff), unsigned((h >> 16) & 0xff));
    return buf;
  }

  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) override {
    if (auto e = take("DescribeNetworkInterfaces")) return tl::unexpected(*e);
    std::vector<NetworkInterface> out;
    for (const auto& [id, e] : enis) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
      bool match = true;
      for (const auto& f : filters) {
        std::string value;
        if (f.name == "attachment.instance-id") {
          value = e.attachment ? e.attachment->instanceId : "";
        } else if (f.name == "network-interface-id") {
          value = id;
        } else if (f.name.rfind("tag:", 0) == 0) {
          value = tagOf(e, f.name.substr(4));
        } else if (f.name == "vpc-id") {
          value = e.vpcId;
        }
        if (std::find(f.values.begin(), f.values.end(), value) == f.values.end()) match = false;
      }
      if (match) out.push_back(e);
    }
    return out;
  }
  Result<void> createTags(const std::vector<std::string>& resources,
                          const std::vector<Tag>& tags) override {
    if (auto e = take("CreateTags")) return tl::unexpected(*e);
    if (onCreateTags) onCreateTags(resources, tags);
    for (const auto& id : resources) {
      auto& list = enis[id].tags;
      for (const auto& t : tags) {
        auto it =
            std::find_if(list.begin(), list.end(), [&](const Tag& x) { return x.key == t.key; });
        if (it == list.end())
          list.push_back(t);
        else
          it->value = t.value;
      }
    }
    return {};
  }
  Result<void> deleteTags(const std::vector<std::string>& resources,
                          const std::vector<Tag>& tags) override {
    if (auto e = take("DeleteTags")) return tl::unexpected(*e);
    deleteRequests.insert(deleteRequests.end(), tags.begin(), tags.end());
    for (const auto& id : resources) {
      auto& list = enis[id].tags;
      for (const auto& t : tags) {
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [&](const Tag& x) {
                                    return x.key == t.key &&
                                           (t.value.empty() || x.value == t.value);
                                  }),
                   list.end());
      }
    }
    return {};
  }
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest& request) override {
    if (auto e = take("CreateNetworkInterface")) return tl::unexpected(*e);
    NetworkInterface e;
    e.id = "eni-new" + std::to_string(nextId++);
    e.subnetId = request.subnetId;
    e.vpcId = vpcId;
    e.status = "available";
    e.description = request.description;
    e.macAddress = macFor(e.id);
    e.privateIpAddress = "10.0.1." + std::to_string(nextId);
    e.securityGroupIds = request.securityGroupIds;
    e.tags = request.tags;
    enis[e.id] = e;
    return e;
  }
  Result<std::string> attachNetworkInterface(const std::string& eniId, const std::string& instance,
                                             std::int64_t deviceIndex) override {
    if (auto e = take("AttachNetworkInterface")) return tl::unexpected(*e);
    auto& e = enis.at(eniId);
    e.attachment = EniAttachment{"attach-" + eniId, instance, deviceIndex, "attached", false};
    e.status = "in-use";
    return e.attachment->attachmentId;
  }
  Result<void> detachNetworkInterface(const std::string& attachmentId, bool) override {
    if (auto e = take("DetachNetworkInterface")) return tl::unexpected(*e);
    for (auto& [id, e] : enis) {
      if (e.attachment && e.attachment->attachmentId == attachmentId) {
        e.attachment.reset();
        e.status = "available";
      }
    }
    return {};
  }
  Result<void> deleteNetworkInterface(const std::string& eniId) override {
    if (auto e = take("DeleteNetworkInterface")) return tl::unexpected(*e);
    enis.erase(eniId);
    return {};
  }
  Result<void> setDeleteOnTermination(const std::string& eniId, const std::string&,
                                      bool value) override {
    if (auto e = take("ModifyNetworkInterfaceAttribute")) return tl::unexpected(*e);
    auto& e = enis.at(eniId);
    if (e.attachment) e.attachment->deleteOnTermination = value;
    return {};
  }
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>&,
                                              const std::vector<Filter>& filters) override {
    if (auto e = take("DescribeSubnets")) return tl::unexpected(*e);
    std::vector<Subnet> out;
    for (const auto& s : subnets) {
      bool match = true;
      for (const auto& f : filters) {
        std::string value;
        if (f.name == "tag:Name") {
          for (const auto& t : s.tags) {
            if (t.key == "Name") value = t.value;
          }
        } else if (f.name == "vpc-id") {
          value = s.vpcId;
        }
        if (std::find(f.values.begin(), f.values.end(), value) == f.values.end()) match = false;
      }
      if (match) out.push_back(s);
    }
    return out;
  }
  Result<std::vector<SecurityGroup>> describeSecurityGroups(const std::vector<std::string>&,
                                                            const std::vector<Filter>&) override {
    take("DescribeSecurityGroups");
    return std::vector<SecurityGroup>{};
  }
  Result<Instance> describeInstance(const std::string& id) override {
    if (auto e = take("DescribeInstances")) return tl::unexpected(*e);
    Instance i;
    i.id = id;
    i.vpcId = vpcId;
    for (const auto& [eid, e] : enis) {
      if (e.attachment && e.attachment->instanceId == id) i.networkInterfaces.push_back(e);
    }
    return i;
  }

 private:
  std::optional<Error> take(const std::string& action) {
    ++calls[action];
    if (onCall) onCall(action);
    auto it = failNext.find(action);
    if (it == failNext.end()) return std::nullopt;
    Error e = it->second;
    failNext.erase(it);
    return e;
  }
};

/// IMDS whose truth is a FakeEc2, as the test stack's emulator takes its truth from moto.
class FakeImds final : public Imds {
 public:
  explicit FakeImds(FakeEc2& ec2) : ec2_(ec2) {}
  int requests = 0;
  int walks = 0;  // interfaces() calls
  bool down = false;
  /// MACs whose keys answer 404 on this read (a stale listing): interfaces() skips them.
  std::set<std::string> staleMacs;
  std::function<void()> onWalk;  // called at each interfaces()
  Result<std::string> get(const std::string& path) override {
    ++requests;
    if (path.find("subnet-ipv4-cidr-block") != std::string::npos) return std::string("10.0.1.0/24");
    return fail(ErrorCode::NotFound, "no " + path);
  }
  Result<InstanceIdentity> identity() override {
    ++requests;
    if (down) return fail(ErrorCode::Transient, "IMDS is down");
    return InstanceIdentity{ec2_.instanceId, "us-east-1", "us-east-1a", ""};
  }
  Result<InterfaceMap> interfaces() override {
    ++requests;
    ++walks;
    if (onWalk) onWalk();
    if (down) return fail(ErrorCode::Transient, "IMDS is down");
    InterfaceMap map;
    for (const auto& [id, e] : ec2_.enis) {
      if (!e.attachment || e.attachment->instanceId != ec2_.instanceId) continue;
      if (staleMacs.count(e.macAddress) != 0) {
        map.skippedMacs[e.macAddress] = "IMDS network/interfaces/macs/" + e.macAddress +
                                        "/local-ipv4s: HTTP 404 (listed, then not found)";
        continue;
      }
      ImdsInterface i;
      i.mac = e.macAddress;
      i.interfaceId = id;
      i.deviceNumber = e.attachment->deviceIndex;
      i.localIpv4s = e.privateIpAddresses.empty() ? std::vector<std::string>{e.privateIpAddress}
                                                  : e.privateIpAddresses;
      i.subnetId = e.subnetId;
      i.vpcId = e.vpcId;
      map.interfaces.push_back(i);
    }
    return map;
  }
  Result<Credentials> roleCredentials() override { return fail(ErrorCode::NotFound, "no role"); }

 private:
  FakeEc2& ec2_;
};

}  // namespace eni::testing
