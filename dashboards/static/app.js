// Marks on <body> how many plots have loaded, for people and for the headless-browser test.
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img[data-plot]");
  var loaded = 0;
  imgs.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded += 1; } });
  document.body.dataset.plotsTotal = String(imgs.length);
  document.body.dataset.plotsLoaded = String(loaded);
});
