{
  "targets": [
    {
      "target_name": "warden_io",
      "sources": ["warden_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
