// Build-time only: fetch the build CA bundle from f7tbuild's loopback server.
// Usage: node fetch-ca.js <url> <dest>. Exits non-zero on any failure.
"use strict";
const fs = require("fs");
const http = require("http");
const [url, dest] = process.argv.slice(2);
http
  .get(url, { timeout: 10000 }, (res) => {
    if (res.statusCode !== 200) {
      console.error(`fetch-ca: ${url} answered HTTP ${res.statusCode}`);
      process.exit(1);
    }
    res.pipe(fs.createWriteStream(dest, { mode: 0o600 }));
  })
  .on("error", (err) => {
    console.error(`fetch-ca: ${url}: ${err.message} (is f7tbuild serving the CA?)`);
    process.exit(1);
  });
