// kubeconfig / in-cluster configuration: pure parsing with an in-memory file system.
#include <gtest/gtest.h>

#include <map>

#include "controller/kube/config.h"
#include "controller/kube/resources.h"

namespace doorman::controller::kube {
namespace {

struct FakeFs {
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> env;
  FileReader reader() {
    return [this](const std::string& p) -> std::optional<std::string> {
      auto it = files.find(p);
      if (it == files.end()) return std::nullopt;
      return it->second;
    };
  }
  EnvReader envreader() {
    return [this](const std::string& n) -> std::optional<std::string> {
      auto it = env.find(n);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
  }
};

constexpr const char* kKubeconfig = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: dev-cluster
    cluster:
      server: https://10.0.0.1:6443/
      certificate-authority-data: Q0EtUEVN        # "CA-PEM"
  - name: other
    cluster:
      server: https://other:443
      insecure-skip-tls-verify: true
users:
  - name: dev-user
    user:
      token: s3cr3t-token
  - name: cert-user
    user:
      client-certificate: certs/client.crt
      client-key-data: S0VZ                       # "KEY"
  - name: file-user
    user:
      tokenFile: /var/token
contexts:
  - name: dev
    context: {cluster: dev-cluster, user: dev-user, namespace: shop}
  - name: certs
    context: {cluster: other, user: cert-user}
  - name: tf
    context: {cluster: other, user: file-user}
  - name: broken
    context: {cluster: missing, user: dev-user}
)";

TEST(KubeConfigTest, CurrentContextTokenAndCaData) {
  FakeFs fs;
  std::string error;
  auto c = ParseKubeconfig(kKubeconfig, "/home/u/.kube/config", fs.reader(), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "CA-PEM");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->token, "s3cr3t-token");
  EXPECT_EQ(c->ns, "shop");
  EXPECT_EQ(c->origin, "kubeconfig /home/u/.kube/config (context dev)");
}

TEST(KubeConfigTest, ClientCertificateFileRelativeToKubeconfigAndKeyData) {
  FakeFs fs;
  fs.files["/home/u/.kube/certs/client.crt"] = "CERT-PEM";
  std::string error;
  auto c = ParseKubeconfig(kKubeconfig, "/home/u/.kube/config", fs.reader(), &error, "certs");
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://other:443");
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->client_cert_pem, "CERT-PEM");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_TRUE(c->token.empty());
}

TEST(KubeConfigTest, TokenFileIsReadAndRemembered) {
  FakeFs fs;
  fs.files["/var/token"] = "file-token\n";
  std::string error;
  auto c = ParseKubeconfig(kKubeconfig, "/k", fs.reader(), &error, "tf");
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->token, "file-token");
  EXPECT_EQ(c->token_file, "/var/token");
}

TEST(KubeConfigTest, ErrorsNameTheProblemButNoSecret) {
  FakeFs fs;
  std::string error;
  EXPECT_FALSE(ParseKubeconfig(kKubeconfig, "/k", fs.reader(), &error, "broken"));
  EXPECT_NE(error.find("cluster \"missing\""), std::string::npos) << error;
  EXPECT_FALSE(ParseKubeconfig(kKubeconfig, "/k", fs.reader(), &error, "nope"));
  EXPECT_NE(error.find("context \"nope\" not found"), std::string::npos) << error;
  EXPECT_FALSE(ParseKubeconfig(kKubeconfig, "/k", fs.reader(), &error, "certs"));  // cert file missing
  EXPECT_NE(error.find("certs/client.crt"), std::string::npos) << error;
  EXPECT_FALSE(ParseKubeconfig("users: [", "/k", fs.reader(), &error));
  EXPECT_FALSE(ParseKubeconfig(R"({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
      "clusters": [{"name": "c", "cluster": {"server": "https://a"}}],
      "users": [{"name": "u", "user": {"exec": {"command": "aws"}, "token": "s3cr3t"}}]})",
                               "/k", fs.reader(), &error));
  EXPECT_NE(error.find("exec credentials are not supported"), std::string::npos) << error;
  EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
}

TEST(KubeConfigTest, InClusterServiceAccount) {
  FakeFs fs;
  fs.env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";
  fs.env["KUBERNETES_SERVICE_PORT"] = "443";
  fs.files["/sa/token"] = "sa-token\n";
  fs.files["/sa/ca.crt"] = "SA-CA";
  fs.files["/sa/namespace"] = "doorman";
  std::string error;
  auto c = InClusterConfig(fs.envreader(), fs.reader(), &error, "/sa");
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token, "sa-token");
  EXPECT_EQ(c->token_file, "/sa/token");  // re-read on rotation by the client
  EXPECT_EQ(c->ca_pem, "SA-CA");
  EXPECT_EQ(c->ns, "doorman");
  fs.env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  EXPECT_EQ(InClusterConfig(fs.envreader(), fs.reader(), &error, "/sa")->server, "https://[fd00::1]:443");
}

TEST(KubeConfigTest, PrecedenceFlagThenInClusterThenEnv) {
  FakeFs fs;
  fs.files["/flag"] = kKubeconfig;
  fs.files["/env"] = R"({"current-context": "e", "contexts": [{"name": "e", "context": {"cluster": "c"}}],
      "clusters": [{"name": "c", "cluster": {"server": "https://from-env"}}]})";
  fs.env["KUBECONFIG"] = "/env:/other";
  std::string error;
  EXPECT_EQ(ResolveKubeConfig("", fs.envreader(), fs.reader(), &error, "/sa")->server, "https://from-env");
  fs.env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";
  fs.env["KUBERNETES_SERVICE_PORT"] = "443";
  fs.files["/sa/token"] = "t";
  fs.files["/sa/ca.crt"] = "ca";
  EXPECT_EQ(ResolveKubeConfig("", fs.envreader(), fs.reader(), &error, "/sa")->origin, "in-cluster");
  EXPECT_EQ(ResolveKubeConfig("/flag", fs.envreader(), fs.reader(), &error, "/sa")->server, "https://10.0.0.1:6443");
  FakeFs empty;
  EXPECT_FALSE(ResolveKubeConfig("", empty.envreader(), empty.reader(), &error, "/sa"));
  EXPECT_NE(error.find("--kubeconfig"), std::string::npos);
}

TEST(KubeConfigTest, Base64) {
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*Base64Decode("aGVs\nbG8"), "hello");
  EXPECT_EQ(*Base64Decode(""), "");
  EXPECT_FALSE(Base64Decode("a$b="));
  EXPECT_FALSE(Base64Decode("a"));
}

TEST(KubeResourcesTest, EqualityLabelSelectors) {
  for (const char* ok : {"doorman.dev/edge=internal", "tier", "!tier", "a=b,c!=d", "a==b", "a=", " a = b , !c ",
                         "app.kubernetes.io/name=doorman", "x=A-b_c.9", "a=b,\tc", "index=1", "!notinx"}) {
    EXPECT_EQ(LabelSelectorProblem(ok), "") << ok;
  }
  const std::pair<const char*, const char*> bad[] = {
      {"", "it is empty"},
      {"a=b,", "an empty requirement"},
      {"tier in (a,b)", "set-based requirements (in, notin) are not taken"},
      {"a!b", "want key!=value"},
      {"-a=b", "\"-a\" is not a label key"},
      {"Bad_Prefix/x=y", "is not a label key"},
      {"a=b c", "\"b c\" is not a label value"},
      {"a=-b", "is not a label value"},
      {"!", "\"\" is not a label key"},
      {"in=x", "\"in\" is a keyword, not a key"},
      {"!notin", "\"notin\" is a keyword, not a key"},
  };
  for (const char* name : {"internal-vip", "example.com/internal", "A.b_c-9"}) EXPECT_TRUE(IsQualifiedName(name)) << name;
  const std::vector<std::string> bad_names = {"", "example.com/", "example.com/a/b", "Bad_Prefix/x", "-a", std::string(64, 'a')};
  for (const auto& name : bad_names) EXPECT_FALSE(IsQualifiedName(name)) << name;
  for (const char* path : {"example.com/internal", "k8s.io/ingress-nginx", "a.b/c/d~e%20f:g=h"}) {
    EXPECT_TRUE(IsDomainPrefixedPath(path)) << path;
  }
  const std::vector<std::string> bad_paths = {"", "internal", "/x", "example.com/", "Bad_Domain/x",
                                              "example.com/a b", "example.com/a\"b", "example.com/a?b",
                                              "example.com/" + std::string(239, 'a')};
  for (const auto& path : bad_paths) EXPECT_FALSE(IsDomainPrefixedPath(path)) << path;
  EXPECT_TRUE(IsDomainPrefixedPath("example.com/" + std::string(238, 'a')));
  for (const auto& [selector, why] : bad) {
    EXPECT_NE(LabelSelectorProblem(selector).find(why), std::string::npos)
        << selector << ": " << LabelSelectorProblem(selector);
  }
}

TEST(KubeResourcesTest, PathsAndEscaping) {
  const Resource* lb = ResourceForKind("LoadBalancer");
  ASSERT_TRUE(lb);
  EXPECT_EQ(lb->collection_path(), "/apis/doorman.dev/v1alpha1/loadbalancers");
  EXPECT_EQ(lb->object_path("default", "shop", "status"), "/apis/doorman.dev/v1alpha1/namespaces/default/loadbalancers/shop/status");
  EXPECT_EQ(ResourceForKind("Service")->collection_path(), "/api/v1/services");
  EXPECT_EQ(ResourceForKind("IngressClass")->object_path("", "doorman"), "/apis/networking.k8s.io/v1/ingressclasses/doorman");
  EXPECT_EQ(ResourceForKind("Secret")->field_selector, "type=kubernetes.io/tls");
  EXPECT_EQ(QueryEscape("type=kubernetes.io/tls"), "type%3Dkubernetes.io%2Ftls");
  EXPECT_EQ(FormatTime(std::chrono::system_clock::time_point(std::chrono::seconds(86400 + 61)) +
                           std::chrono::microseconds(5)),
            "1970-01-02T00:01:01Z");
  EXPECT_EQ(FormatTime(std::chrono::system_clock::time_point(std::chrono::seconds(1)) + std::chrono::microseconds(5), true),
            "1970-01-01T00:00:01.000005Z");
}

}  // namespace
}  // namespace doorman::controller::kube
