#include "controller/publish/publisher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;
using std::chrono::milliseconds;

const TimePoint T0 = TimePoint{} + std::chrono::hours(1);
TimePoint At(int ms) { return T0 + milliseconds(ms); }

std::shared_ptr<const v1::Snapshot> Snap(const std::string& listener) {
  auto s = std::make_shared<v1::Snapshot>();
  s->add_listeners()->set_name(listener);
  return s;
}

v1::DataplaneMessage Hello(const std::string& node, uint64_t last = 0) {
  v1::DataplaneMessage m;
  m.mutable_hello()->set_node_name(node);
  m.mutable_hello()->set_last_applied_version(last);
  return m;
}

v1::DataplaneMessage Ack(const Push& p, std::vector<std::string> warnings = {}) {
  v1::DataplaneMessage m;
  m.mutable_ack()->set_version(p.version);
  m.mutable_ack()->set_nonce(p.nonce);
  for (auto& w : warnings) m.mutable_ack()->add_warnings(w);
  return m;
}

v1::DataplaneMessage Nack(const Push& p, uint64_t still_serving, const std::string& detail) {
  v1::DataplaneMessage m;
  m.mutable_nack()->set_version(still_serving);
  m.mutable_nack()->set_nonce(p.nonce);
  m.mutable_nack()->set_rejected_version(p.version);
  m.mutable_nack()->set_error_detail(detail);
  return m;
}

size_t CountLevel(const PublisherOutput& out, log::Level level) {
  size_t n = 0;
  for (const auto& d : out.diagnostics) n += d.level == level ? 1 : 0;
  return n;
}

TEST(Holdoff, BatchesChangesUntilQuiet) {
  Publisher p;
  EXPECT_FALSE(p.NextDeadline());
  EXPECT_FALSE(p.TakeDue(At(0)));
  p.NotifyChange(At(0));
  EXPECT_EQ(p.NextDeadline(), At(100));
  p.NotifyChange(At(50));
  EXPECT_EQ(p.NextDeadline(), At(150));
  EXPECT_FALSE(p.TakeDue(At(149)));
  auto due = p.TakeDue(At(150));
  ASSERT_TRUE(due);
  EXPECT_EQ(*due, At(0));  // when the first pending change was seen
  EXPECT_FALSE(p.NextDeadline());
  EXPECT_FALSE(p.TakeDue(At(1000)));
}

TEST(Holdoff, ContinuousChangesStillPublishWithinMaxDelay) {
  Publisher p;
  for (int t = 0; t <= 2000; t += 50) {
    p.NotifyChange(At(t));
    if (auto due = p.TakeDue(At(t))) {
      EXPECT_EQ(t, 1000);
      EXPECT_EQ(*due, At(0));
      return;
    }
    ASSERT_LE(*p.NextDeadline(), At(1000));
  }
  FAIL() << "never became due";
}

TEST(Holdoff, OptionsAreHonoured) {
  Publisher p(PublisherOptions{milliseconds(10), milliseconds(30)});
  p.NotifyChange(At(0));
  p.NotifyChange(At(8));
  p.NotifyChange(At(16));
  p.NotifyChange(At(24));
  EXPECT_EQ(p.NextDeadline(), At(30));
}

TEST(Publisher, FirstMessageMustBeHello) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  v1::DataplaneMessage ack;
  ack.mutable_ack()->set_nonce("1-1");
  auto out = p.OnMessage(s, ack, At(1));
  ASSERT_TRUE(out.close_invalid_argument);
  EXPECT_EQ(p.connected(), 0u);
  EXPECT_TRUE(out.pushes.empty());
  // An empty message is not a Hello either.
  const StreamId s2 = p.OpenStream(At(0));
  EXPECT_TRUE(p.OnMessage(s2, v1::DataplaneMessage(), At(1)).close_invalid_argument);
}

// The connect line names the advertised address, and says when there is none: such a dataplane
// serves and counts as ready but adds no status address (helper-104).
TEST(Publisher, TheConnectLineSaysWhenNoAddressIsAdvertised) {
  Publisher p;
  auto connected = [](const PublisherOutput& out) {
    for (const auto& d : out.diagnostics) {
      if (d.message == "dataplane connected") return d;
    }
    ADD_FAILURE() << "no connect line";
    return Diagnostic{};
  };
  const Diagnostic without = connected(p.OnMessage(p.OpenStream(At(0)), Hello("n1"), At(1)));
  EXPECT_EQ(without.Field("address"), "");
  EXPECT_EQ(without.Field("hint"), "no --advertise-address: status addresses do not list this dataplane");
  v1::DataplaneMessage with = Hello("n2");
  with.mutable_hello()->set_advertise_address("192.0.2.10");
  const Diagnostic d = connected(p.OnMessage(p.OpenStream(At(0)), with, At(1)));
  EXPECT_EQ(d.Field("address"), "192.0.2.10");
  EXPECT_EQ(d.Field("hint"), "");
}

// Every field of a diagnostic is written as a field, escaped: beyond the fifth they used to be
// appended to the message as they were (a peer's string with a space or an ESC in it, raw).
TEST(Publisher, EveryDiagnosticFieldIsWrittenEscaped) {
  log::SetFormat(log::Format::kText);
  log::SetLevel(log::Level::kInfo);
  Diagnostic d{log::Level::kInfo, "publish", "many fields", {}};
  for (int i = 0; i < 7; ++i) d.fields.emplace_back("f" + std::to_string(i), "v" + std::to_string(i));
  d.fields.emplace_back("peer", "a b\x1b[31m");
  testing::internal::CaptureStderr();
  Emit(d);
  const std::string line = testing::internal::GetCapturedStderr();
  EXPECT_NE(line.find("publish: many fields f0=v0 f1=v1 f2=v2 f3=v3 f4=v4 f5=v5 f6=v6 peer=\"a b\\u001b[31m\"\n"),
            std::string::npos)
      << line;
}

// Two streams saying one node name: a warning naming both (status keeps one view per node).
TEST(Publisher, TwoDataplanesWithOneNodeNameAreWarned) {
  Publisher p;
  const StreamId a = p.OpenStream(At(0));
  const StreamId b = p.OpenStream(At(0));
  const StreamId c = p.OpenStream(At(0));
  auto warned = [](const PublisherOutput& out) {
    return std::any_of(out.diagnostics.begin(), out.diagnostics.end(), [](const Diagnostic& d) {
      return d.level == log::Level::kWarn && d.message.find("one node name") != std::string::npos;
    });
  };
  EXPECT_FALSE(warned(p.OnMessage(a, Hello("n1"), At(1))));
  EXPECT_FALSE(warned(p.OnMessage(c, Hello("n2"), At(1))));
  EXPECT_TRUE(warned(p.OnMessage(b, Hello("n1"), At(2))));
  EXPECT_EQ(p.connected(), 3u);
}

TEST(Publisher, HelloBeforeAnySnapshotWaitsThenGetsTheFirstOne) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  auto out = p.OnMessage(s, Hello("n1"), At(1));
  EXPECT_FALSE(out.close_invalid_argument);
  EXPECT_TRUE(out.pushes.empty());
  EXPECT_EQ(p.connected(), 1u);
  out = p.Publish(11, Snap("a"), At(2));
  ASSERT_EQ(out.pushes.size(), 1u);
  EXPECT_EQ(out.pushes[0].stream, s);
  EXPECT_EQ(out.pushes[0].version, 11u);
  EXPECT_EQ(out.pushes[0].snapshot->listeners(0).name(), "a");
}

TEST(Publisher, HelloWithTheCurrentVersionStillGetsASnapshotToAck) {
  Publisher p;
  p.Publish(11, Snap("a"), At(0));
  const StreamId s = p.OpenStream(At(5));
  auto out = p.OnMessage(s, Hello("n1", 11), At(6));
  ASSERT_EQ(out.pushes.size(), 1u);
  EXPECT_EQ(out.pushes[0].version, 11u);
}

TEST(Publisher, AtMostOnePushInFlightAndTheNewestFollowsTheAck) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out1 = p.Publish(1, Snap("a"), At(10));
  ASSERT_EQ(out1.pushes.size(), 1u);
  const Push first = out1.pushes[0];
  // Two more versions while the first is in flight: nothing sent.
  EXPECT_TRUE(p.Publish(2, Snap("b"), At(20)).pushes.empty());
  EXPECT_TRUE(p.Publish(3, Snap("c"), At(30)).pushes.empty());
  EXPECT_EQ(p.dataplanes()[0].in_flight_version, 1u);
  // The ACK brings only the newest (coalesced).
  auto out = p.OnMessage(s, Ack(first), At(40));
  ASSERT_EQ(out.pushes.size(), 1u);
  EXPECT_EQ(out.pushes[0].version, 3u);
  EXPECT_NE(out.pushes[0].nonce, first.nonce);
  ASSERT_EQ(out.push_seconds.size(), 1u);
  EXPECT_DOUBLE_EQ(out.push_seconds[0], 0.030);  // change seen at 10, ACK at 40
  EXPECT_EQ(p.dataplanes()[0].acked_version, 1u);
  // ACK of 3: nothing more to send.
  auto out3 = p.OnMessage(s, Ack(out.pushes[0]), At(100));
  EXPECT_TRUE(out3.pushes.empty());
  EXPECT_EQ(p.dataplanes()[0].acked_version, 3u);
  EXPECT_DOUBLE_EQ(out3.push_seconds[0], 0.070);
}

TEST(Publisher, IdenticalStateIsNeverResent) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out = p.Publish(7, Snap("a"), At(0));
  p.OnMessage(s, Ack(out.pushes[0]), At(1));
  auto again = p.Publish(7, Snap("a"), At(2));
  EXPECT_TRUE(again.pushes.empty());
  EXPECT_TRUE(again.diagnostics.empty());
  // A change and back before the ACK: the dataplane already has 7, nothing to send after the ACK.
  auto out8 = p.Publish(8, Snap("b"), At(3));
  ASSERT_EQ(out8.pushes.size(), 1u);
  p.Publish(7, Snap("a"), At(4));
  auto after = p.OnMessage(s, Ack(out8.pushes[0]), At(5));
  ASSERT_EQ(after.pushes.size(), 1u);  // it has 8 now; 7 is newest and differs
  EXPECT_EQ(after.pushes[0].version, 7u);
}

TEST(Publisher, NackedVersionIsNotResent) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out1 = p.Publish(1, Snap("a"), At(0));
  p.OnMessage(s, Ack(out1.pushes[0]), At(1));
  auto out2 = p.Publish(2, Snap("b"), At(2));
  ASSERT_EQ(out2.pushes.size(), 1u);
  auto nack = p.OnMessage(s, Nack(out2.pushes[0], 1, "route default/shop/api: bad regex"), At(3));
  EXPECT_TRUE(nack.pushes.empty());
  ASSERT_EQ(CountLevel(nack, log::Level::kError), 1u);
  EXPECT_EQ(nack.diagnostics[0].Field("error"), "route default/shop/api: bad regex");
  EXPECT_EQ(nack.diagnostics[0].Field("node"), "n1");
  const auto info = p.dataplanes()[0];
  EXPECT_EQ(info.acked_version, 1u);
  EXPECT_EQ(info.rejected_version, 2u);
  EXPECT_EQ(info.last_error, "route default/shop/api: bad regex");
  EXPECT_TRUE(p.Publish(2, Snap("b"), At(4)).pushes.empty());
  // The next different version goes out.
  auto out3 = p.Publish(3, Snap("c"), At(5));
  ASSERT_EQ(out3.pushes.size(), 1u);
  EXPECT_EQ(out3.pushes[0].version, 3u);
}

TEST(Publisher, PeerStringsAreBoundedInLogsAndInfo) {
  // A NACK quoting megabytes (a whole certificate bundle), a huge node name or warning: each is
  // cut to a bound at a UTF-8 boundary and says how long it was.
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello(std::string(100000, 'n')), At(0));
  auto out1 = p.Publish(1, Snap("a"), At(0));
  auto acked = p.OnMessage(s, Ack(out1.pushes[0], {std::string(1 << 20, 'w')}), At(1));
  ASSERT_EQ(CountLevel(acked, log::Level::kWarn), 1u);
  for (const auto& d : acked.diagnostics) {
    for (const auto& [k, v] : d.fields) EXPECT_LE(v.size(), 4200u) << k;
  }
  auto out2 = p.Publish(2, Snap("b"), At(2));
  std::string detail = "x" + std::string(3 << 20, '\xc3');  // 2-byte UTF-8 sequences, cut mid-way
  for (size_t i = 2; i < detail.size(); i += 2) detail[i] = '\xa9';
  auto nack = p.OnMessage(s, Nack(out2.pushes[0], 1, detail), At(3));
  ASSERT_EQ(CountLevel(nack, log::Level::kError), 1u);
  const std::string error = nack.diagnostics[0].Field("error");
  EXPECT_LE(error.size(), 4200u);
  EXPECT_NE(error.find("(" + std::to_string(detail.size()) + " bytes, truncated)"), std::string::npos) << error.substr(4000);
  const size_t cut = error.find("...");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_EQ(detail.compare(0, cut, error, 0, cut), 0);
  EXPECT_NE(static_cast<unsigned char>(error[cut - 1]), 0xc3u);  // not half a character
  const auto info = p.dataplanes()[0];
  EXPECT_LE(info.node_name.size(), 300u);
  EXPECT_EQ(info.last_error, error);
}

TEST(Publisher, AnAdvertiseAddressThatIsNotAnIpOrDnsNameIsNotPublished) {
  Publisher p;
  const StreamId a = p.OpenStream(At(0)), b = p.OpenStream(At(0));
  v1::DataplaneMessage bad = Hello("n1");
  bad.mutable_hello()->set_advertise_address("Bad_Host:80");
  auto out = p.OnMessage(a, bad, At(0));
  EXPECT_EQ(CountLevel(out, log::Level::kWarn), 1u);
  v1::DataplaneMessage good = Hello("n2");
  good.mutable_hello()->set_advertise_address("10.0.0.7");
  EXPECT_EQ(CountLevel(p.OnMessage(b, good, At(0)), log::Level::kWarn), 0u);
  std::map<std::string, std::string> addresses;
  for (const auto& d : p.dataplanes()) addresses[d.node_name] = d.advertise_address;
  EXPECT_EQ(addresses["n1"], "");
  EXPECT_EQ(addresses["n2"], "10.0.0.7");
}

TEST(Publisher, GarbageAndOutOfOrderMessagesAreIgnored) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out1 = p.Publish(1, Snap("a"), At(0));
  const Push push = out1.pushes[0];
  // ACK with an unknown nonce: ignored and logged; the push stays in flight.
  Push wrong = push;
  wrong.nonce = "999";
  auto r = p.OnMessage(s, Ack(wrong), At(1));
  EXPECT_FALSE(r.close_invalid_argument);
  EXPECT_EQ(CountLevel(r, log::Level::kWarn), 1u);
  EXPECT_EQ(p.dataplanes()[0].in_flight_version, 1u);
  EXPECT_EQ(p.dataplanes()[0].acked_version, 0u);
  // NACK with unknown nonce, a second Hello, an empty message: all ignored, and not logged
  // again within a minute of the last such line (a peer must not flood the log, helper-126).
  EXPECT_EQ(CountLevel(p.OnMessage(s, Nack(wrong, 0, "x"), At(2)), log::Level::kWarn), 0u);
  EXPECT_EQ(CountLevel(p.OnMessage(s, Hello("n1"), At(2)), log::Level::kWarn), 0u);
  EXPECT_EQ(CountLevel(p.OnMessage(s, v1::DataplaneMessage(), At(2)), log::Level::kWarn), 0u);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(p.OnMessage(s, Ack(wrong), At(3)).diagnostics.empty());
  EXPECT_EQ(p.dataplanes()[0].in_flight_version, 1u);
  // A minute later the next one is logged, with the count of those that were not.
  auto later = p.OnMessage(s, Hello("n1"), At(60'001));
  ASSERT_EQ(CountLevel(later, log::Level::kWarn), 1u);
  bool counted = false;
  for (const auto& [k, v] : later.diagnostics[0].fields) counted = counted || (k == "not_logged_since_last" && v == "1003");
  EXPECT_TRUE(counted);
  // The real ACK still works; a duplicate of it is then unknown.
  EXPECT_EQ(p.OnMessage(s, Ack(push), At(60'002)).push_seconds.size(), 1u);
  EXPECT_EQ(CountLevel(p.OnMessage(s, Ack(push), At(120'003)), log::Level::kWarn), 1u);
  // Messages for a closed or unknown stream: nothing.
  p.CloseStream(s);
  EXPECT_TRUE(p.OnMessage(s, Ack(push), At(120'005)).diagnostics.empty());
  EXPECT_TRUE(p.OnMessage(12345, Hello("x"), At(120'005)).diagnostics.empty());
}

TEST(Publisher, AckForAnotherVersionWithTheRightNonceIsNotAcceptedAsProgrammed) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out = p.Publish(5, Snap("a"), At(0));
  Push lie = out.pushes[0];
  lie.version = 4;
  auto r = p.OnMessage(s, Ack(lie), At(1));
  EXPECT_TRUE(r.pushes.empty());  // and not re-sent in a loop
  EXPECT_TRUE(r.push_seconds.empty());
  EXPECT_EQ(p.dataplanes()[0].acked_version, 0u);
}

v1::DataplaneMessage Report(uint64_t version, std::vector<std::string> unserved) {
  v1::DataplaneMessage m;
  m.mutable_listener_report()->set_version(version);
  for (auto& l : unserved) m.mutable_listener_report()->add_unserved_listeners(l);
  return m;
}

TEST(Publisher, AListenerReportUpdatesTheAckedVersionsUnservedListenersOnly) {
  Publisher p;
  const StreamId s = p.OpenStream(At(0));
  p.OnMessage(s, Hello("n1"), At(0));
  auto out1 = p.Publish(1, Snap("a"), At(0));
  v1::DataplaneMessage ack = Ack(out1.pushes[0]);
  ack.mutable_ack()->add_unserved_listeners("l4-tcp-8080");
  ack.mutable_ack()->add_unserved_listeners("l4-udp-53");
  p.OnMessage(s, ack, At(1));
  ASSERT_EQ(p.dataplanes()[0].unserved_listeners.size(), 2u);
  // The port of one freed later: the dataplane reports it without an update.
  auto r = p.OnMessage(s, Report(1, {"l4-udp-53"}), At(2));
  EXPECT_TRUE(r.pushes.empty());
  ASSERT_EQ(CountLevel(r, log::Level::kInfo), 1u);
  EXPECT_EQ(r.diagnostics[0].Field("unserved_listeners"), "l4-udp-53");
  EXPECT_EQ(p.dataplanes()[0].unserved_listeners, std::vector<std::string>{"l4-udp-53"});
  // The same report again changes nothing and logs nothing at info.
  EXPECT_EQ(CountLevel(p.OnMessage(s, Report(1, {"l4-udp-53"}), At(3)), log::Level::kInfo), 0u);
  // A report for a version this stream has not ACKed (its ACK still on the way, or another
  // dataplane's idea) is not taken: the ACK of that version carries the list.
  auto out2 = p.Publish(2, Snap("b"), At(4));
  ASSERT_EQ(out2.pushes.size(), 1u);
  p.OnMessage(s, Report(2, {}), At(5));
  p.OnMessage(s, Report(0, {}), At(5));
  p.OnMessage(s, Report(7, {}), At(5));
  EXPECT_EQ(p.dataplanes()[0].unserved_listeners, std::vector<std::string>{"l4-udp-53"});
  EXPECT_EQ(p.dataplanes()[0].acked_version, 1u);
  p.OnMessage(s, Ack(out2.pushes[0]), At(6));  // version 2, every listener served
  EXPECT_TRUE(p.dataplanes()[0].unserved_listeners.empty());
  p.OnMessage(s, Report(2, {}), At(7));
  EXPECT_TRUE(p.dataplanes()[0].unserved_listeners.empty());
  // Before the Hello a report is a protocol error like any other first message.
  const StreamId fresh = p.OpenStream(At(8));
  EXPECT_TRUE(p.OnMessage(fresh, Report(2, {}), At(8)).close_invalid_argument.has_value());
}

// Two dataplanes, "a" and "b", past their Hello.
std::pair<StreamId, StreamId> TwoDataplanes(Publisher& p) {
  const StreamId a = p.OpenStream(At(0));
  const StreamId b = p.OpenStream(At(0));
  p.OnMessage(a, Hello("a"), At(0));
  p.OnMessage(b, Hello("b"), At(0));
  return {a, b};
}

TEST(Publisher, AckWarningsAreLoggedOnceWhileTheyPersist) {
  Publisher p;
  const auto [a, b] = TwoDataplanes(p);
  auto out = p.Publish(1, Snap("x"), At(0));
  ASSERT_EQ(out.pushes.size(), 2u);
  auto ra = p.OnMessage(a, Ack(out.pushes[0], {"route r: canary not implemented"}), At(1));
  auto rb = p.OnMessage(b, Ack(out.pushes[1], {"route r: canary not implemented"}), At(1));
  EXPECT_EQ(CountLevel(ra, log::Level::kWarn), 1u);
  EXPECT_EQ(CountLevel(rb, log::Level::kWarn), 0u);
  // The same warning on the next version is not logged again (helper-111: a listener that
  // could not bind was logged for every version); a new one is.
  auto out2 = p.Publish(2, Snap("y"), At(2));
  auto r2 = p.OnMessage(a, Ack(out2.pushes[0], {"route r: canary not implemented", "listener l: port in use"}), At(3));
  EXPECT_EQ(CountLevel(r2, log::Level::kWarn), 1u);
  for (const auto& d : r2.diagnostics) {
    if (d.level == log::Level::kWarn) {
      EXPECT_EQ(d.Field("warning"), "listener l: port in use");
    }
  }
  auto r2b = p.OnMessage(b, Ack(out2.pushes[1], {"listener l: port in use"}), At(3));
  EXPECT_EQ(CountLevel(r2b, log::Level::kWarn), 0u);
  // Gone on version 3, back on version 4: logged again.
  auto out3 = p.Publish(3, Snap("z"), At(4));
  EXPECT_EQ(CountLevel(p.OnMessage(a, Ack(out3.pushes[0], {}), At(5)), log::Level::kWarn), 0u);
  p.OnMessage(b, Ack(out3.pushes[1], {}), At(5));
  auto out4 = p.Publish(4, Snap("w"), At(6));
  auto r4 = p.OnMessage(a, Ack(out4.pushes[0], {"listener l: port in use"}), At(7));
  EXPECT_EQ(CountLevel(r4, log::Level::kWarn), 1u);
  // helper-113: versions published faster than the ACKs come (5 pushed, 6 published before its
  // ACK) do not make a persisting warning new again.
  auto out5 = p.Publish(5, Snap("v"), At(8));
  ASSERT_EQ(out5.pushes.size(), 1u);  // b still has version 4 in flight
  ASSERT_EQ(out5.pushes[0].stream, a);
  EXPECT_TRUE(p.Publish(6, Snap("u"), At(9)).pushes.empty());
  EXPECT_TRUE(p.Publish(7, Snap("t"), At(9)).pushes.empty());
  auto r5 = p.OnMessage(a, Ack(out5.pushes[0], {"listener l: port in use"}), At(10));
  EXPECT_EQ(CountLevel(r5, log::Level::kWarn), 0u);
}

// helper-113: a warning one dataplane stops reporting and another starts reporting is the
// other's news.
TEST(Publisher, AWarningNewOnAnotherDataplaneIsLogged) {
  Publisher p;
  const auto [a, b] = TwoDataplanes(p);
  auto out = p.Publish(1, Snap("x"), At(0));
  EXPECT_EQ(CountLevel(p.OnMessage(a, Ack(out.pushes[0], {"w"}), At(1)), log::Level::kWarn), 1u);
  EXPECT_EQ(CountLevel(p.OnMessage(b, Ack(out.pushes[1], {}), At(1)), log::Level::kWarn), 0u);
  auto out2 = p.Publish(2, Snap("y"), At(2));
  EXPECT_EQ(CountLevel(p.OnMessage(a, Ack(out2.pushes[0], {}), At(3)), log::Level::kWarn), 0u);
  auto rb = p.OnMessage(b, Ack(out2.pushes[1], {"w"}), At(3));
  ASSERT_EQ(CountLevel(rb, log::Level::kWarn), 1u);
  for (const auto& d : rb.diagnostics) {
    if (d.level == log::Level::kWarn) {
      EXPECT_EQ(d.Field("node"), "b");
    }
  }
}

TEST(Publisher, LatencyOfALateJoinerCountsFromItsConnect) {
  Publisher p;
  p.Publish(1, Snap("x"), At(0));
  const StreamId s = p.OpenStream(At(5000));
  auto out = p.OnMessage(s, Hello("late"), At(5001));
  auto ack = p.OnMessage(s, Ack(out.pushes[0]), At(5020));
  ASSERT_EQ(ack.push_seconds.size(), 1u);
  EXPECT_DOUBLE_EQ(ack.push_seconds[0], 0.020);
}

TEST(Publisher, ManyDataplanesAndDisconnects) {
  Publisher p;
  std::vector<StreamId> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(p.OpenStream(At(0)));
    p.OnMessage(ids.back(), Hello("n" + std::to_string(i)), At(0));
  }
  EXPECT_EQ(p.connected(), 100u);
  auto out = p.Publish(1, Snap("x"), At(0));
  EXPECT_EQ(out.pushes.size(), 100u);
  std::set<std::string> nonces;
  for (const auto& push : out.pushes) nonces.insert(push.nonce);
  EXPECT_EQ(nonces.size(), 100u);
  for (int i = 0; i < 50; ++i) {
    auto d = p.CloseStream(ids[i]);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].message, "dataplane disconnected");
  }
  EXPECT_EQ(p.connected(), 50u);
  EXPECT_TRUE(p.CloseStream(ids[0]).empty());  // twice is harmless
  // Streams that did not ACK yet get nothing new until they do.
  EXPECT_TRUE(p.Publish(2, Snap("y"), At(1)).pushes.empty());
}

}  // namespace
}  // namespace doorman::controller
