// Where the static __shared__ variables of the emulated kernels live, so that
// every launch can poison them.
//
// Under the emulation `__shared__` is `static`: one variable for the whole
// process, which the threads of a block share (blocks run one at a time).
// g++ 12 ignores section attributes on the static locals of templates, so no
// linker section can collect them; they are found instead in this
// executable's symbol table, as the static locals of functions of namespace
// see::cuda (mangled names starting with _ZZN3see4cuda), where the kernels'
// code lives and has no other static locals.
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "thread_groups.h"

namespace see {
namespace emulation {

struct MemoryRange {
  unsigned char* begin;
  size_t bytes;
};

inline int record_load_bias(dl_phdr_info* info, size_t, void* bias) {
  *static_cast<uintptr_t*>(bias) = info->dlpi_addr;  // the first object is the executable
  return 1;
}

// Reads the ranges once from /proc/self/exe.
inline std::vector<MemoryRange> find_static_shared() {
  std::vector<MemoryRange> ranges;
  const int fd = open("/proc/self/exe", O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) fail("cannot read /proc/self/exe to find the static __shared__ variables");
  void* image = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (image == MAP_FAILED) fail("cannot map /proc/self/exe");
  const auto* bytes = static_cast<const unsigned char*>(image);
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(bytes);
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(bytes + header->e_shoff);
  uintptr_t bias = 0;
  dl_iterate_phdr(record_load_bias, &bias);
  static const char kPrefix[] = "_ZZN3see4cuda";
  for (int s = 0; s < header->e_shnum; ++s) {
    if (sections[s].sh_type != SHT_SYMTAB) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(bytes + sections[s].sh_offset);
    const char* names = reinterpret_cast<const char*>(bytes + sections[sections[s].sh_link].sh_offset);
    for (size_t i = 0; i < sections[s].sh_size / sizeof(Elf64_Sym); ++i) {
      const Elf64_Sym& symbol = symbols[i];
      if (ELF64_ST_TYPE(symbol.st_info) != STT_OBJECT || symbol.st_size == 0) continue;
      if (std::strncmp(names + symbol.st_name, kPrefix, sizeof(kPrefix) - 1) != 0) continue;
      ranges.push_back({reinterpret_cast<unsigned char*>(bias + symbol.st_value), symbol.st_size});
    }
  }
  munmap(image, st.st_size);
  return ranges;
}

inline const std::vector<MemoryRange>& static_shared_ranges() {
  static const std::vector<MemoryRange> ranges = find_static_shared();
  return ranges;
}

}  // namespace emulation
}  // namespace see
