#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/error.h"
#include "agent/eni/tags.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// Where an ENI was found: the labels of eni_agent_resolve_source_total.
/// EniTaggerCache: k8s-eni-tagger's ConfigMap eni-tagger-cache, read once at start (a hint, checked
/// like the pod-eni annotation).
enum class ResolveSource { PodAnnotation, Imds, Ec2, Cache, EniTaggerCache };
std::string_view toString(ResolveSource source);

struct ResolveRequest {
  std::string podKey;
  std::string ip;
  std::string podEniAnnotation;  // vpc.amazonaws.com/pod-eni, raw
  std::string hintedEni;         // eni-tagger-cache's entry for this pod, unverified; or ""
};

struct ResolvedEni {
  std::string eniId;
  std::string subnet;  // empty when the source did not say
  std::string mac;
  std::int64_t deviceIndex = -1;
  ResolveSource source = ResolveSource::Cache;
  // As IMDS lists the interface (--shared-eni-tagging=refuse judges by them); -1: unknown.
  std::int64_t ipv4Count = -1;
  std::int64_t ipv4Prefixes = -1;
};

/// Resolves pod IPs to ENIs, cheapest source first: the pod-eni annotation, then IMDS (addresses
/// and delegated prefixes, refreshed once per call on a miss), then a request's hintedEni, then one
/// batched
/// DescribeNetworkInterfaces for everything still unknown (addresses.private-ip-address with
/// every IP, plus vpc-id). Blocking; worker thread only.
class EniResolver {
 public:
  EniResolver(Imds& imds, Ec2Api& ec2) : imds_(imds), ec2_(ec2) {}

  /// One answer per request, by pod key. The ENIs EC2 described for it are appended to
  /// `described` (the caller checks whose they are). An ENI named by the pod-eni annotation is
  /// not checked here either: its source says so.
  std::map<std::string, Result<ResolvedEni>> resolve(const std::vector<ResolveRequest>& requests,
                                                     std::vector<NetworkInterface>& described);
  /// Reads the IMDS interface map unless it is loaded already (no refresh); errors wait for the
  /// next resolve.
  void prefetch() { (void)interfaces(false); }
  /// The IDs of the instance's interfaces as IMDS last listed them (no IMDS call); empty before.
  std::vector<std::string> interfaceIds() const;
  /// The instance's VPC, learnt from IMDS; empty until the first IMDS answer.
  const std::string& vpcId() const { return vpcId_; }
  /// Whether IMDS lists `eniId` among this instance's interfaces (refreshed once when it does
  /// not). False when IMDS cannot be read.
  bool attachedHere(const std::string& eniId);

 private:
  using Answers = std::map<std::string, Result<ResolvedEni>>;
  Result<const InterfaceMap*> interfaces(bool refresh);
  /// Answers what IMDS knows and leaves the rest in `pending`; IMDS's error, or "".
  std::string fromImds(std::vector<const ResolveRequest*>& pending, Answers& out);
  void fromEc2(const std::vector<const ResolveRequest*>& pending, const std::string& imdsError,
               Answers& out, std::vector<NetworkInterface>& described);

  Imds& imds_;
  Ec2Api& ec2_;
  std::optional<InterfaceMap> map_;
  std::string vpcId_;
};

/// The eniId of the entry whose privateIp is `ip` in a vpc.amazonaws.com/pod-eni annotation (a
/// JSON list of {"eniId","privateIp",...}); empty when no entry has that IP. Anyone who may edit
/// the pod may write it, so the caller still checks that the ENI is this node's and holds `ip`.
std::string eniFromPodEniAnnotation(const std::string& annotation, const std::string& ip);

}  // namespace eni
