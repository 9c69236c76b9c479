// MathJax reads this object when it loads. pymdownx.arithmatex (generic mode) wraps every
// $...$ as \(...\) and every $$...$$ as \[...\] inside an element of class "arithmatex";
// MathJax typesets those elements only, so a dollar sign in prose or code is left alone.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
