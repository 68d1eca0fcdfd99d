// The OS threads that play the CUDA threads of one block at a time.
//
// Workers are created on demand and kept: under ThreadSanitizer creating a
// thread costs about a millisecond, and a test launches thousands of blocks.
// Each worker has its own mutex and condition variable for the hand-over, so
// that starting a block does not order its threads against each other.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace see {
namespace emulation {

class ThreadPool {
 public:
  ~ThreadPool() {
    for (auto& worker : workers_) {
      {
        std::lock_guard<std::mutex> lock(worker->mutex);
        worker->quit = true;
      }
      worker->wake.notify_one();
      worker->thread.join();
    }
  }

  // Calls body(t) for t < threads, each on its own thread, and returns when all have returned.
  void run(int threads, const std::function<void(int)>& body) {
    while (static_cast<int>(workers_.size()) < threads) workers_.emplace_back(new Worker(this));
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      pending_ = threads;
    }
    for (int t = 0; t < threads; ++t) {
      Worker& worker = *workers_[t];
      {
        std::lock_guard<std::mutex> lock(worker.mutex);
        worker.body = &body;
        worker.index = t;
      }
      worker.wake.notify_one();
    }
    std::unique_lock<std::mutex> lock(done_mutex_);
    all_done_.wait(lock, [&] { return pending_ == 0; });
  }

 private:
  struct Worker {
    explicit Worker(ThreadPool* pool) : thread([this, pool] { loop(pool); }) {}
    void loop(ThreadPool* pool) {
      for (;;) {
        const std::function<void(int)>* job;
        int t;
        {
          std::unique_lock<std::mutex> lock(mutex);
          wake.wait(lock, [&] { return body != nullptr || quit; });
          if (quit) return;
          job = body;
          t = index;
          body = nullptr;
        }
        (*job)(t);
        std::lock_guard<std::mutex> lock(pool->done_mutex_);
        if (--pool->pending_ == 0) pool->all_done_.notify_one();
      }
    }
    std::mutex mutex;
    std::condition_variable wake;
    const std::function<void(int)>* body = nullptr;
    int index = 0;
    bool quit = false;
    std::thread thread;  // last: it starts after the members it reads
  };

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex done_mutex_;
  std::condition_variable all_done_;
  int pending_ = 0;
};

inline ThreadPool& thread_pool() {
  static ThreadPool pool;
  return pool;
}

}  // namespace emulation
}  // namespace see
