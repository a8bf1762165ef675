#include "queue/memory_queue.h"

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

sdk::Message message(const std::string& id) {
  sdk::Message m;
  m.id = id;
  m.channel = "#general";
  return m;
}

std::vector<std::string> ids(const std::vector<sdk::Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.id);
  return out;
}

TEST(MemoryQueueTest, CapacityNAcceptsExactlyNMessages) {
  MemoryQueue queue(3);

  EXPECT_EQ(queue.push(message("1")).status, Queue::PushStatus::Accepted);
  EXPECT_EQ(queue.push(message("2")).status, Queue::PushStatus::Accepted);
  EXPECT_EQ(queue.push(message("3")).status, Queue::PushStatus::Accepted);
  EXPECT_EQ(queue.push(message("4")).status, Queue::PushStatus::Full);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.limits().max_messages, 3u);
}

TEST(MemoryQueueTest, LeasedMessagesCountUntilAcked) {
  MemoryQueue queue(2);
  queue.push(message("1"));
  queue.push(message("2"));

  ASSERT_EQ(queue.take(10).size(), 2u);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.push(message("3")).status, Queue::PushStatus::Full);

  queue.ack("1");
  EXPECT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue.push(message("3")).status, Queue::PushStatus::Accepted);
}

TEST(MemoryQueueTest, TakePreservesPushOrderAndRespectsMax) {
  MemoryQueue queue(10);
  for (const char* id : {"1", "2", "3", "4", "5"}) queue.push(message(id));

  EXPECT_THAT(ids(queue.take(2)), ElementsAre("1", "2"));
  EXPECT_THAT(ids(queue.take(10)), ElementsAre("3", "4", "5"));
  EXPECT_THAT(queue.take(10), IsEmpty());
}

TEST(MemoryQueueTest, ConcurrentPushesNeverExceedCapacity) {
  constexpr int kThreads = 8;
  constexpr int kPushesPerThread = 1000;
  constexpr std::size_t kCapacity = 500;
  MemoryQueue queue(kCapacity);
  std::atomic<int> accepted{0};
  std::latch start(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();  // all threads race for the same slots
      for (int i = 0; i < kPushesPerThread; ++i) {
        if (queue.push(message(std::to_string(t) + "-" + std::to_string(i))).status ==
            Queue::PushStatus::Accepted)
          ++accepted;
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(accepted.load(), static_cast<int>(kCapacity));
  EXPECT_EQ(queue.size(), kCapacity);
}

TEST(MemoryQueueTest, OnPushListenerIsCalledOncePerAcceptedPush) {
  MemoryQueue queue(2);
  int calls = 0;
  queue.on_push([&] { ++calls; });

  queue.push(message("1"));
  queue.push(message("2"));
  queue.push(message("3"));  // full: no call

  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace slack_proxy
