// HEALTHCHECK of the chp image: GET http://127.0.0.1:$CHP_HEALTHCHECK_PORT/_chp_healthz
// (default port 8000, the proxy port) must answer 200 within 3 s.
"use strict";
const http = require("http");
const port = Number(process.env.CHP_HEALTHCHECK_PORT || "8000");
const req = http.get(
  { host: "127.0.0.1", port: port, path: "/_chp_healthz", timeout: 3000 },
  (res) => {
    res.resume();
    process.exit(res.statusCode === 200 ? 0 : 1);
  }
);
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", (err) => {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
});
