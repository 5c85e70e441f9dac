// Writes (or checks) every artifact generated from the transition table:
//   docs/lifecycle.md  the Mermaid diagram and the table, between "generated" markers
//   docs/lifecycle.dot the Graphviz diagram
//   tests/golden/transition_table.json
// Usage: clickpipe_gen_docs --check|--write <source-dir>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "clickpipe/clickpipe.hpp"
#include "clickpipe/json.hpp"

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// Replaces what stands between "<!-- BEGIN GENERATED: name -->" and "<!-- END GENERATED: name -->".
bool splice(std::string& doc, const std::string& name, const std::string& body) {
  const std::string begin = "<!-- BEGIN GENERATED: " + name + " -->\n";
  const std::string end = "<!-- END GENERATED: " + name + " -->";
  auto b = doc.find(begin);
  auto e = doc.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) return false;
  doc.replace(b + begin.size(), e - b - begin.size(), body);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "--check" && std::string(argv[1]) != "--write")) {
    std::cerr << "usage: clickpipe_gen_docs --check|--write <source-dir>\n";
    return 2;
  }
  const bool check = std::string(argv[1]) == "--check";
  const std::string root = argv[2];

  struct Artifact {
    std::string path;
    std::string expected;
  };
  std::vector<Artifact> artifacts;

  const std::string md_path = root + "/docs/lifecycle.md";
  std::string md = read(md_path);
  if (!splice(md, "diagram", "```mermaid\n" + clickpipe::to_mermaid() + "```\n") ||
      !splice(md, "table", clickpipe::to_markdown_table())) {
    std::cerr << md_path << ": missing or broken GENERATED markers\n";
    return 1;
  }
  artifacts.push_back({md_path, md});
  artifacts.push_back({root + "/docs/lifecycle.dot", clickpipe::to_dot()});
  artifacts.push_back({root + "/tests/golden/transition_table.json",
                       clickpipe::transition_table_json().dump(2) + "\n"});

  int stale = 0;
  for (const Artifact& a : artifacts) {
    if (read(a.path) == a.expected) continue;
    if (check) {
      std::cerr << a.path << " is out of date with the transition table; run: "
                << "cmake --build <build-dir> --target update-generated\n";
      ++stale;
    } else if (!write(a.path, a.expected)) {
      std::cerr << "cannot write " << a.path << "\n";
      return 1;
    } else {
      std::cout << "wrote " << a.path << "\n";
    }
  }
  return stale == 0 ? 0 : 1;
}
