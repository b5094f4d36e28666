import Foundation
import Testing
@testable import API

@Suite struct ConsoleTests {
    @Test func theLanguageFollowsAcceptLanguageWeights() {
        #expect(ConsoleLanguage.negotiate("en-US,en;q=0.9,ja;q=0.8") == .en)
        #expect(ConsoleLanguage.negotiate("fr, ja-JP;q=0.5, en;q=0.4") == .ja)
        #expect(ConsoleLanguage.negotiate("en;q=0, ja;q=0.1") == .ja)
        #expect(ConsoleLanguage.negotiate("de, fr") == nil)
        #expect(ConsoleLanguage.negotiate(String(repeating: ";;,,q=", count: 10_000)) == nil)
        #expect(ConsoleLanguage.negotiate(nil) == nil)
    }

    @Test func formsDecodeAsBrowsersSendThem() {
        let form = FormFields("email=a%2Bb%40example.jp&name=%E9%A3%9B+%E8%84%9A&empty=&flag&x=1&x=2&bad=%ZZ")
        #expect(form["email"] == "a+b@example.jp")
        #expect(form["name"] == "飛 脚")
        #expect(form["empty"] == nil && form["flag"] == nil)
        #expect(form.all("x") == ["1", "2"])
        #expect(form["bad"] == "%ZZ")
    }

    @Test func redirectsStayInTheConsole() {
        #expect(ConsoleRoutes.localPath("/console/log?x=1") == "/console/log?x=1")
        for hostile in ["https://evil.example/", "//evil.example/console/", "/console//evil", "/console/\\evil", "/other",
                        "/console/\r\nSet-Cookie: x=1", nil] {
            #expect(ConsoleRoutes.localPath(hostile) == "/console/")
        }
    }

    @Test func chartsEscapeTheirTextAndBoundTheirScale() {
        let chart = SVGChart(title: "<script>", xLabel: "x&y", yLabel: "\"n\"", labels: ["a<b", "c"],
                             series: [SVGChart.Series(name: "s'", colour: "#000", values: [3, 0, 99])])
        let svg = chart.svg
        #expect(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("a&lt;b") && svg.contains("s&#39;"))
        let table = chart.table(period: "<p>")
        #expect(!table.contains("<script>") && table.contains("<caption>&lt;script&gt;</caption>") && table.contains("&lt;p&gt;")
                && table.contains("<th scope=\"row\">a&lt;b</th><td class=\"num\">3</td>") && table.contains("<td class=\"num\">0</td></tr></tbody>"))
        #expect(SVGChart.niceCeiling(1) == 1 && SVGChart.niceCeiling(7) == 10 && SVGChart.niceCeiling(11) == 20
                && SVGChart.niceCeiling(301) == 400 && SVGChart.niceCeiling(Int.max / 100) >= Int.max / 100)
        #expect(ConsoleFormat.number(1_234_567) == "1,234,567" && ConsoleFormat.number(-1000) == "-1,000" && ConsoleFormat.number(12) == "12")
    }

    @Test func bothCataloguesHaveEveryKeyAndTemplatesLoad() throws {
        let views = try ConsoleViews()
        #expect(views.catalog(.ja).keys.sorted() == views.catalog(.en).keys.sorted())
        #expect(views.catalog(.ja)["nav_overview"] == "概要" && views.catalog(.en)["nav_overview"] == "Overview")
        let page = views.page("error", ["message": "<b>x</b>", "status": 404],
                              layout: ["t": views.catalog(.en), "lang": "en", "title": "Error"])
        #expect(page.contains("&lt;b&gt;x&lt;/b&gt;") && !page.contains("<b>x</b>"))
    }
}

struct ConsoleRenderingTests {
    @Test func catalogueTextsAreInlinedEscaped() {
        let catalog = ["a": "<b>&", "b": "plain"]
        #expect(ConsoleViews.inline(catalog, into: "x{{t.a}}y{{{t.a}}}z{{ t.b }}{{name}}{{t.missing}}{{#s}}{{/s}}{{ open")
                == "x&lt;b&gt;&amp;y<b>&zplain{{name}}{{t.missing}}{{#s}}{{/s}}{{ open")
    }

    @Test func decimalsAreWrittenWithoutFormatStrings() {
        #expect(SVGChart.round(0) == "0.0" && SVGChart.round(12.34) == "12.3" && SVGChart.round(-1.26) == "-1.3")
        #expect(SVGChart.round(99.96) == "100.0" && SVGChart.round(.nan) == "0" && SVGChart.round(1e300) == "0")
    }
}
