// Live pages: the main part is fetched again every few seconds and
// replaced, unless the user is typing in a form on it.
(function () {
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) return;
  var every = parseInt(main.dataset.live, 10) || 2000;
  function busy() {
    var a = document.activeElement;
    return a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  function refresh() {
    if (document.hidden || busy()) return schedule();
    fetch(location.href, { headers: { "X-Berth-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) { main.innerHTML = html; main.dataset.updated = String(Date.now()); })
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { setTimeout(refresh, every); }
  schedule();
})();
