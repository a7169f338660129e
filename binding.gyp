# Builds multiproc's native addon: the few OS primitives that JavaScript
# cannot reach (POSIX shared memory, futex-style wait/wake on a word in shared
# memory, fork/parent-death helpers). All policy lives in lib/*.ts.
{
  "targets": [
    {
      "target_name": "multiproc",
      "sources": [
        "native/addon.cc",
        "native/shm.cc",
        "native/futex.cc",
        "native/process.cc",
        "native/fdwatch.cc",
        "native/park.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      # No C++ exceptions on any OS (Node's default, and node-addon-api's
      # NAPI_DISABLE_CPP_EXCEPTIONS): Xcode builds turn them off whatever
      # cflags say, so Linux builds must refuse a try/catch as well.
      "cflags_cc!": ["-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/platform_linux.cc"],
          "libraries": ["-lrt", "-lpthread", "-ldl"]
        }],
        ["OS=='mac'", {
          "sources": ["native/platform_darwin.cc"],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
          }
        }]
      ]
    }
  ]
}
