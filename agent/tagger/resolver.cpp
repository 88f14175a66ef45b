#include "agent/tagger/resolver.h"

#include <algorithm>

#include "agent/base/json.h"

namespace eni {

std::string_view toString(ResolveSource source) {
  switch (source) {
    case ResolveSource::PodAnnotation:
      return "pod-annotation";
    case ResolveSource::Imds:
      return "imds";
    case ResolveSource::Ec2:
      return "ec2";
    case ResolveSource::Cache:
      return "cache";
    case ResolveSource::EniTaggerCache:
      return "eni-tagger-cache";
  }
  return "cache";
}

std::string eniFromPodEniAnnotation(const std::string& annotation, const std::string& ip) {
  if (annotation.empty()) return {};
  auto parsed = parseJson(annotation);
  if (!parsed || !parsed->isArray()) return {};
  for (const auto& entry : *parsed) {
    const std::string id = stringField(entry, "eniId");
    if (!id.empty() && stringField(entry, "privateIp") == ip) return id;
  }
  return {};
}

std::vector<std::string> EniResolver::interfaceIds() const {
  std::vector<std::string> ids;
  if (!map_) return ids;
  for (const auto& i : map_->interfaces) {
    if (!i.interfaceId.empty()) ids.push_back(i.interfaceId);
  }
  return ids;
}

bool EniResolver::attachedHere(const std::string& eniId) {
  for (bool refresh : {false, true}) {
    auto map = interfaces(refresh);
    if (!map) return false;
    for (const auto& i : (*map)->interfaces) {
      if (i.interfaceId == eniId) return true;
    }
  }
  return false;
}

Result<const InterfaceMap*> EniResolver::interfaces(bool refresh) {
  if (!map_ || refresh) {
    auto fresh = imds_.interfaces();
    if (!fresh) return fail(fresh.error());
    map_ = std::move(*fresh);
    for (const auto& i : map_->interfaces) {
      if (!i.vpcId.empty()) vpcId_ = i.vpcId;
    }
  }
  return &*map_;
}

std::map<std::string, Result<ResolvedEni>> EniResolver::resolve(
    const std::vector<ResolveRequest>& requests, std::vector<NetworkInterface>& described) {
  Answers out;
  std::vector<const ResolveRequest*> pending;
  for (const auto& r : requests) {
    const std::string id = eniFromPodEniAnnotation(r.podEniAnnotation, r.ip);
    if (id.empty()) {
      pending.push_back(&r);
      continue;
    }
    ResolvedEni e;
    e.eniId = id;
    e.source = ResolveSource::PodAnnotation;
    out.emplace(r.podKey, e);
  }
  const std::string imdsError = fromImds(pending, out);
  // A hint saves the lookup by IP only: the pass reads the ENI it names before anything else.
  std::vector<const ResolveRequest*> unhinted;
  for (const auto* r : pending) {
    if (r->hintedEni.empty()) {
      unhinted.push_back(r);
      continue;
    }
    ResolvedEni e;
    e.eniId = r->hintedEni;
    e.source = ResolveSource::EniTaggerCache;
    out.emplace(r->podKey, e);
  }
  if (!unhinted.empty()) fromEc2(unhinted, imdsError, out, described);
  return out;
}

std::string EniResolver::fromImds(std::vector<const ResolveRequest*>& pending, Answers& out) {
  // The cached map first, then one refresh if anything was missing.
  for (bool refresh : {false, true}) {
    if (pending.empty()) break;
    auto map = interfaces(refresh);
    if (!map) return map.error().describe();
    std::vector<const ResolveRequest*> still;
    for (const auto* r : pending) {
      if (const ImdsInterface* i = (*map)->findByIp(r->ip)) {
        out.emplace(r->podKey, ResolvedEni{i->interfaceId, i->subnetId, i->mac, i->deviceNumber,
                                           ResolveSource::Imds,
                                           static_cast<std::int64_t>(i->localIpv4s.size()),
                                           static_cast<std::int64_t>(i->ipv4Prefixes.size())});
      } else {
        still.push_back(r);
      }
    }
    pending = std::move(still);
  }
  return "";
}

void EniResolver::fromEc2(const std::vector<const ResolveRequest*>& pending,
                          const std::string& imdsError, Answers& out,
                          std::vector<NetworkInterface>& described) {
  // One filtered call for every IP still unknown.
  std::vector<std::string> ips;
  ips.reserve(pending.size());
  for (const auto* r : pending) ips.push_back(r->ip);
  std::vector<Filter> filters{{"addresses.private-ip-address", ips}};
  if (!vpcId_.empty()) filters.push_back({"vpc-id", {vpcId_}});
  auto answer = ec2_.describeNetworkInterfaces({}, filters);
  if (!answer) {
    for (const auto* r : pending) {
      out.emplace(r->podKey, fail(answer.error().code, "cannot look up the ENI of " + r->ip + ": " +
                                                           answer.error().describe()));
    }
    return;
  }
  described.insert(described.end(), answer->begin(), answer->end());
  for (const auto* r : pending) {
    auto holder = std::find_if(answer->begin(), answer->end(), [&](const NetworkInterface& eni) {
      const auto& addrs = eni.privateIpAddresses;
      return eni.privateIpAddress == r->ip ||
             std::find(addrs.begin(), addrs.end(), r->ip) != addrs.end();
    });
    if (holder != answer->end()) {
      const NetworkInterface& eni = *holder;
      out.emplace(r->podKey, ResolvedEni{eni.id, eni.subnetId, eni.macAddress,
                                         eni.attachment ? eni.attachment->deviceIndex : -1,
                                         ResolveSource::Ec2});
      continue;
    }
    std::string why =
        "no ENI holds " + r->ip + " (checked the vpc.amazonaws.com/pod-eni annotation, IMDS";
    why += imdsError.empty() ? "" : " [" + imdsError + "]";
    why += " and EC2); will retry";
    out.emplace(r->podKey, fail(ErrorCode::NotFound, why));
  }
}

}  // namespace eni
