// evolink-jobs web console: live updates without a framework.
// Elements with data-live-url are replaced by the element of the same id fetched from that
// URL, every few seconds, until the fresh element no longer has one (the job has settled).
// The jobs table's data-newer-url brings newly created jobs in at the top.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var HEADERS = { "X-Console-Fragment": "1" };

  function fetchDocument(url) {
    return fetch(url, { headers: HEADERS, credentials: "same-origin" }).then(function (response) {
      if (response.status === 401) {
        window.location.reload(); // the session ended: the page redirects to sign-in
        return null;
      }
      if (response.status === 404) { return "gone"; } // e.g. purged: stop asking
      if (!response.ok) { return null; }
      return response.text().then(function (html) {
        return new DOMParser().parseFromString(html, "text/html");
      });
    }).catch(function () { return null; });
  }

  function refocus(old, fresh) {
    // Keep keyboard focus on the same link when a row is swapped under it.
    var active = document.activeElement;
    if (!active || !old.contains(active) || !active.getAttribute("href")) { return; }
    var match = fresh.querySelector('[href="' + active.getAttribute("href") + '"]');
    if (match) { match.focus(); }
  }

  function refreshLive(element) {
    return fetchDocument(element.getAttribute("data-live-url")).then(function (doc) {
      if (doc === "gone") { element.removeAttribute("data-live-url"); return; }
      var fresh = doc && doc.getElementById(element.id);
      if (!fresh || !element.isConnected) { return; }
      fresh = document.importNode(fresh, true);
      element.replaceWith(fresh);
      refocus(element, fresh);
    });
  }

  function refreshNewer(body) {
    return fetchDocument(body.getAttribute("data-newer-url")).then(function (doc) {
      if (doc === "gone") { body.removeAttribute("data-newer-url"); return; }
      var fresh = doc && doc.getElementById(body.id);
      if (!fresh) { return; }
      var rows = Array.prototype.slice.call(fresh.querySelectorAll("tr.job-row"));
      rows.reverse().forEach(function (row) {
        if (!document.getElementById(row.id)) { body.insertBefore(document.importNode(row, true), body.firstChild); }
      });
      if (rows.length) {
        var empty = document.getElementById("no-jobs");
        if (empty) { empty.remove(); }
      }
      var next = fresh.getAttribute("data-newer-url");
      if (next) { body.setAttribute("data-newer-url", next); }
    });
  }

  function tick() {
    var work = [];
    document.querySelectorAll("[data-newer-url]").forEach(function (el) { work.push(refreshNewer(el)); });
    document.querySelectorAll("[data-live-url]").forEach(function (el) { work.push(refreshLive(el)); });
    Promise.all(work).then(schedule, schedule);
  }

  function schedule() {
    if (document.querySelector("[data-live-url], [data-newer-url]")) { window.setTimeout(tick, INTERVAL_MS); }
  }

  document.addEventListener("DOMContentLoaded", schedule);
})();
