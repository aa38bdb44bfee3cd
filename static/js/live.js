// Results as you type on the search page (templates/search/results.html), as progressive
// enhancement: without this script the page is a plain form and works as before.
//
// After a pause in typing it asks /search/results (search.views.results_fragment) for the
// results of what the form would submit: first with rerank=0, the full-text order at once, then
// without, the reranked order, each swapped into #results-region as the server rendered it
// (every piece of user text escaped there). A newer keystroke aborts both requests, and a
// response that is not the latest one is dropped. The URL follows the query: one history entry
// per search (the first update pushes, later keystrokes replace it); back and forward show
// their entry's results. #live-status (role=status) says in a short line what came; focus stays
// in the search box.
(function () {
  "use strict";

  var DEBOUNCE_MS = 250;

  var form = document.querySelector("form.searchbox");
  var region = document.getElementById("results-region");
  var status = document.getElementById("live-status");
  if (!form || !region || !status || !window.fetch || !window.AbortController || !window.URLSearchParams) {
    return;
  }
  var input = form.querySelector("input[name=q]");
  var resultsUrl = region.getAttribute("data-results-url");
  var pageUrl = form.getAttribute("action");
  if (!input || !resultsUrl || !pageUrl) {
    return;
  }
  document.documentElement.classList.add("live-results");
  input.setAttribute("aria-controls", "results-region");
  input.setAttribute("aria-describedby", "live-status");

  var timer = null;
  var sequence = 0; // the latest search; a response for an older one is dropped
  var controller = null; // aborts the requests of the search in flight
  var wanted = location.search; // the parameters of the latest search asked for (or the page's own)
  var pushed = false; // whether this search has its own history entry yet
  var chosenTab = null; // the ordering a reader picked on a phone, kept across updates

  function formSearch() {
    var data = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string" && (value !== "" || name === "q")) {
        data.append(name, value);
      }
    });
    return data.get("q").trim() ? "?" + data.toString() : "";
  }

  function withParameter(search, extra) {
    return resultsUrl + (search ? search + "&" : "?") + extra;
  }

  function facts(container) {
    var node = container.querySelector(".live-facts");
    return {
      status: node ? node.getAttribute("data-status") : "",
      announce: node ? node.getAttribute("data-announce") : "",
    };
  }

  // Swap the region's contents, keeping what the reader had chosen or was on.
  function swap(html) {
    var active = document.activeElement;
    var focused = null;
    if (active && region.contains(active)) {
      var holder = active.closest("[id]");
      focused = { id: holder && holder.id, href: active.getAttribute("href"), tag: active.tagName };
    }
    var opened = Array.prototype.map.call(region.querySelectorAll("details[open]"), function (d) {
      return d.className;
    });
    region.innerHTML = html;
    opened.forEach(function (name) {
      var again = name && region.querySelector("details." + name.split(" ").join("."));
      if (again) {
        again.open = true;
      }
    });
    if (chosenTab) {
      var tab = document.getElementById(chosenTab);
      if (tab) {
        tab.checked = true;
      }
    }
    if (focused) {
      var back = focused.id && document.getElementById(focused.id);
      var target = back;
      if (back && focused.href && window.CSS && CSS.escape) {
        target = back.querySelector('[href="' + CSS.escape(focused.href) + '"]');
      }
      (target || input).focus();
    }
  }

  function setTitle(search) {
    var q = new URLSearchParams(search).get("q") || "";
    document.title = (q.trim() ? q.trim() + " · " : "") + "Reranked search";
  }

  function updateHistory(search, how) {
    var url = pageUrl + search;
    if (how === "push" || (how === "typing" && !pushed)) {
      if (url !== location.pathname + location.search) {
        history.pushState({ live: true }, "", url);
      }
      pushed = how === "typing"; // a submitted search is done: the next typing pushes anew
    } else if (how === "typing" || how === "replace") {
      history.replaceState({ live: true }, "", url);
    }
  }

  function fetchFragment(url, signal) {
    return fetch(url, { signal: signal, headers: { Accept: "text/html" }, credentials: "same-origin" }).then(
      function (response) {
        return response.text().then(function (html) {
          return { ok: response.ok, html: html };
        });
      }
    );
  }

  // Show the results of `search` (a query string, "" for none): full-text order, then reranked.
  // `how` is "typing", "push" (a submitted search) or "none" (back and forward).
  function load(search, how) {
    var mine = ++sequence;
    wanted = search;
    if (controller) {
      controller.abort();
    }
    controller = new AbortController();
    var signal = controller.signal;
    // Busy until the full-text order is in; the reranked column says itself that it is coming.
    region.setAttribute("aria-busy", "true");
    region.classList.add("loading");
    function done() {
      if (mine === sequence) {
        region.removeAttribute("aria-busy");
        region.classList.remove("loading");
      }
    }
    var first = search ? fetchFragment(withParameter(search, "rerank=0"), signal) : fetchFragment(resultsUrl, signal);
    return first
      .then(function (reply) {
        if (mine !== sequence) {
          return null;
        }
        swap(reply.html);
        done();
        updateHistory(search, how);
        setTitle(search);
        var said = facts(region);
        status.textContent = said.announce;
        if (!reply.ok || said.status !== "pending") {
          return null;
        }
        return fetchFragment(withParameter(search, "rerank=1"), signal).then(function (second) {
          if (mine !== sequence) {
            return;
          }
          swap(second.html);
          status.textContent = facts(region).announce;
        });
      })
      .catch(function (error) {
        if (mine !== sequence || (error && error.name === "AbortError")) {
          return;
        }
        done();
        status.textContent = "Results as you type are unavailable; press Enter to search.";
        if (how === "push") {
          form.submit(); // the page without the script
        }
      });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var search = formSearch();
      if (search !== wanted) {
        load(search, "typing");
      }
    }, DEBOUNCE_MS);
  }

  input.addEventListener("input", function (event) {
    if (event.isComposing) {
      return; // an input method (pinyin) is still composing: wait for its characters
    }
    later();
  });
  input.addEventListener("compositionend", later);
  // Leaving the box ends a search: the next typing gets a history entry of its own.
  input.addEventListener("blur", function () {
    pushed = false;
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    var search = formSearch();
    pushed = false;
    if (search === wanted && !region.classList.contains("loading")) {
      updateHistory(search, "push");
      return;
    }
    load(search, "push");
  });

  region.addEventListener("change", function (event) {
    if (event.target && event.target.classList.contains("switch")) {
      chosenTab = event.target.id;
    }
  });

  window.addEventListener("popstate", function () {
    clearTimeout(timer);
    pushed = false;
    var q = new URLSearchParams(location.search).get("q") || "";
    input.value = q;
    load(location.search, "none");
  });
})();
