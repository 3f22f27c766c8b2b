// What the theme leaves to the site for every page to pass an accessibility check (axe-core):
// a name for the search dialog, and a keyboard stop on each table that scrolls sideways, so a
// reader without a mouse can scroll it. `document$` fires on every page the theme shows.
document$.subscribe(function () {
  var search = document.querySelector(".md-search[role=dialog]");
  if (search && !search.hasAttribute("aria-label")) {
    search.setAttribute("aria-label", "Search the policies");
  }
  document.querySelectorAll(".md-typeset__scrollwrap").forEach(function (wrap) {
    wrap.setAttribute("tabindex", "0");
    wrap.setAttribute("role", "region");
    var caption = wrap.querySelector("caption");
    wrap.setAttribute("aria-label", caption ? caption.textContent : "Table");
  });
});
